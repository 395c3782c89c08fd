// Clicking an example in the classification view, the unit view or the strip puts its number in "Example #".
document.addEventListener('click', (event) => {
  const figure = event.target.closest('#evaluation [data-row], #unit [data-row], #strip [data-row]');
  const input = document.querySelector('#example-row input');
  if (!figure || !input) return;
  input.value = figure.dataset.row;
  input.dispatchEvent(new Event('input', {bubbles: true}));
  input.dispatchEvent(new Event('change', {bubbles: true}));
});
