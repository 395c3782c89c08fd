// Start over removes every example, here and on the server: ask first.
document.addEventListener('click', (event) => {
  if (event.target.closest('#start-over') && !confirm('Remove every example and class, here and on the server?')) {
    event.stopImmediatePropagation();
    event.preventDefault();
  }
}, true);
