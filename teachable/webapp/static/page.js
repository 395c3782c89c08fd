// A server restart: say so in words and offer to reload (the work was saved on the server).
let appId = null, lost = false;
const banner = (text) => {
  let box = document.querySelector('#tm-reconnect');
  if (!box) {
    box = document.createElement('div');
    box.id = 'tm-reconnect';
    box.setAttribute('role', 'alert');
    document.body.prepend(box);
  }
  box.innerHTML = '';
  box.append(text);
  if (!lost) {
    const button = document.createElement('button');
    button.textContent = 'Reload now';
    button.onclick = () => location.reload();
    box.append(' ', button);
  }
};
const check = async () => {
  try {
    const response = await fetch('gradio_api/app_id', {cache: 'no-store'});
    const id = (await response.json()).app_id;
    if (appId === null) appId = id;
    if (id !== appId || lost) {
      lost = false;
      banner('The server restarted. Reload the page to carry on: your examples were saved.');
    }
  } catch (error) {
    lost = true;
    banner('The connection to the server was lost. Your examples are saved; this page reconnects by itself when the server is back.');
  }
};
setInterval(check, 5000);
check();
