// The icons view arrives as data (cell indices, strengths, a small backdrop); it is drawn on one canvas that
// stays on the page, so nothing flickers between frames.
let drawnCells = null;
const drawIconGrid = () => {
  const data = document.querySelector('#grid .tm-icon-cells');
  let canvas = document.querySelector('#tm-grid-canvas');
  if (!data) { if (canvas) canvas.style.display = 'none'; drawnCells = null; return; }
  const sheet = document.querySelector('#tm-icon-sheet');
  const key = data.dataset.cells + data.dataset.strength + data.dataset.backdrop;
  if (!sheet || key === drawnCells) return;  // Gradio may update the same element in place
  drawnCells = key;
  const cell = Number(sheet.dataset.cell), sheetColumns = Number(sheet.dataset.columns);
  const rows = Number(data.dataset.rows), columns = Number(data.dataset.columns);
  if (!canvas) {
    canvas = document.createElement('canvas');
    canvas.id = 'tm-grid-canvas';
    canvas.className = 'tm-grid';
    data.closest('#grid').before(canvas);
  }
  const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const indices = new Uint16Array(bytes(data.dataset.cells).buffer);
  const strength = bytes(data.dataset.strength);
  const backdrop = new Image();
  backdrop.onload = () => {
    canvas.width = columns * cell; canvas.height = rows * cell; canvas.style.display = '';
    const context = canvas.getContext('2d');
    context.globalAlpha = 1;
    context.drawImage(backdrop, 0, 0, canvas.width, canvas.height);
    context.fillStyle = 'rgba(0, 0, 0, 0.65)';
    context.fillRect(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < rows * columns; i++) {
      const k = indices[i];
      context.globalAlpha = strength[i] / 255;
      context.drawImage(sheet, (k % sheetColumns) * cell, Math.floor(k / sheetColumns) * cell, cell, cell,
                        (i % columns) * cell, Math.floor(i / columns) * cell, cell, cell);
    }
    canvas.dataset.frames = String(Number(canvas.dataset.frames || 0) + 1);
  };
  backdrop.src = data.dataset.backdrop;
};
new MutationObserver(drawIconGrid).observe(
  document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ['data-backdrop']});
