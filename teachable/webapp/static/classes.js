// The class cards' buttons as commands: each is written as JSON ([verb, arguments..., time stamp]) into the
// hidden #class-command box, whose change event runs classes.run_command on the server. Holding a record button
// records; releasing it (anywhere on the page, or leaving the window) stops.
const send = (...parts) => {
  const box = document.querySelector('#class-command textarea, #class-command input');
  if (!box) return;
  box.value = JSON.stringify([...parts, Date.now() + Math.random()]);
  box.dispatchEvent(new Event('input', {bubbles: true}));
};
const clickToRecord = () => document.querySelector('#record-toggle input')?.checked;
let held = null;
// While a class records, a browser that runs the model itself sends each frame's picture too (browser.js).
const start = (name) => { held = name; document.documentElement.dataset.recording = name; send('record', name); };
const stop = () => {
  if (held !== null) { held = null; delete document.documentElement.dataset.recording; send('stop'); }
};
document.addEventListener('pointerdown', (event) => {
  const button = event.target.closest('.tm-record');
  if (!button || clickToRecord() || event.button > 0) return;
  event.preventDefault();
  start(button.dataset.class);
});
for (const type of ['pointerup', 'pointercancel']) {
  document.addEventListener(type, () => { if (!clickToRecord()) stop(); });
}
window.addEventListener('blur', () => { if (!clickToRecord()) stop(); });
document.addEventListener('contextmenu', (event) => {
  if (event.target.closest('.tm-record')) event.preventDefault();  // a long touch is a hold, not a menu
});
document.addEventListener('keydown', (event) => {
  const button = event.target.closest?.('.tm-record');
  if (button && (event.key === ' ' || event.key === 'Enter')) {
    event.preventDefault();
    if (!event.repeat && !clickToRecord()) start(button.dataset.class);
  }
  if (event.target.matches?.('.tm-name') && event.key === 'Enter') event.target.blur();
});
document.addEventListener('keyup', (event) => {
  if (event.target.closest?.('.tm-record') && (event.key === ' ' || event.key === 'Enter') && !clickToRecord()) stop();
});
document.addEventListener('click', (event) => {
  const record = event.target.closest('.tm-record');
  if (record && clickToRecord()) {
    held === null ? start(record.dataset.class) : stop();
    return;
  }
  const action = event.target.closest('[data-action]');
  const card = event.target.closest('.tm-card');
  if (action?.dataset.action === 'add') send('add');
  const count = card?.querySelector('.tm-count')?.textContent;
  if (action?.dataset.action === 'delete' && confirm(`Delete class "${card.dataset.class}" and its ${count}?`)) {
    send('delete', card.dataset.class);
  }
  if (action?.dataset.action === 'clear' && confirm(`Remove all ${count} of "${card.dataset.class}"?`)) {
    send('clear', card.dataset.class);
  }
  const tray = event.target.closest('.tm-tray-to');
  if (tray) send('tray', Number(tray.dataset.item), tray.dataset.to ?? null);
});
document.addEventListener('change', (event) => {
  const input = event.target.closest?.('.tm-name');
  const card = input?.closest('.tm-card');
  if (card && input.value.trim() && input.value !== card.dataset.class) send('rename', card.dataset.class, input.value);
});
