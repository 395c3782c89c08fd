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
// A card's picture opens a larger view of it with Remove and Move to each other class (the example is named by its
// uid, which stays while rows shift). The view sits on the page, not in the card, so a redrawn card keeps it open.
const closeExample = () => document.querySelectorAll('.tm-example-pop').forEach((pop) => pop.remove());
const openExample = (thumb) => {
  closeExample();
  const card = thumb.closest('.tm-card');
  const pop = document.createElement('div');
  pop.className = 'tm-example-pop';
  pop.setAttribute('role', 'dialog');
  pop.setAttribute('aria-label', `An example of ${card.dataset.class}`);
  pop.dataset.uid = thumb.dataset.uid;
  const image = thumb.querySelector('img').cloneNode();
  image.width = image.height = 144;
  const button = (words, action, to) => {
    const made = document.createElement('button');
    made.textContent = words;
    made.dataset.pop = action;
    if (to !== undefined) made.dataset.to = to;
    return made;
  };
  const others = [...document.querySelectorAll('#classes .tm-card')].map((c) => c.dataset.class);
  pop.append(image, button('Remove this example', 'remove'));
  for (const name of others.filter((n) => n !== card.dataset.class)) {
    pop.append(button(`Move to ${name}`, 'move', name));
  }
  pop.append(button('Close', 'close'));
  const place = thumb.getBoundingClientRect();
  pop.style.top = `${Math.max(8, Math.min(place.bottom + 6, innerHeight - 320))}px`;
  pop.style.left = `${Math.max(8, Math.min(place.left, innerWidth - 236))}px`;
  document.body.append(pop);
  pop.querySelector('button').focus();
};
document.addEventListener('keydown', (event) => { if (event.key === 'Escape') closeExample(); });

document.addEventListener('click', (event) => {
  const thumb = event.target.closest('.tm-card-thumb');
  if (thumb) {
    openExample(thumb);
    return;
  }
  const chosen = event.target.closest('.tm-example-pop [data-pop]');
  if (chosen) {
    const uid = Number(chosen.closest('.tm-example-pop').dataset.uid);
    if (chosen.dataset.pop === 'remove') send('remove-example', uid);
    if (chosen.dataset.pop === 'move') send('move-example', uid, chosen.dataset.to);
    closeExample();
    return;
  }
  if (!event.target.closest('.tm-example-pop')) closeExample();
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
