// Browser inference (webapp/browser.py): this computer runs the model on its own camera frames and sends the host
// only the embedding (and, while a class records or when the host asks for one, a small JPEG of the square the
// model saw).
// The host keeps the classes and the views. document.documentElement.dataset.liveModel says where the model runs
// now: 'loading', 'browser' or 'server' (live-camera.js streams frames to the host only in 'server').
const root = document.documentElement;
const config = JSON.parse(document.querySelector('#browser-config')?.dataset.config || '{"live_model": "server"}');
const state = {where: 'loading', session: null, sent: 0, answered: 0, sentAt: 0, times: [], lastThumbnail: 0,
               lastSquare: null, lastEmbedding: null, busy: false, channel: null, channelLostAt: 0, direct: 0,
               markSeen: 0, wantsPicture: false};
window.teachableBrowser = state;  // read by the tests
const THUMBNAIL_EVERY_MS = 1000, ANSWER_WAIT_MS = 2000, CHECKED_FRAMES = 5;

const say = (text) => {
  const box = document.querySelector('#model-place');
  if (box) box.textContent = text;
};
const place = (where, words) => {
  state.where = where;
  root.dataset.liveModel = where;
  say(words);
};
const onHost = 'The model runs on the host: camera frames are sent there.';
const here = 'The model runs on this computer: camera frames stay here (only the pictures of recorded examples go to the host).';

const gridMode = () => document.querySelector('#grid-mode input:checked')?.value || 'icons';
const viewsOn = () => document.querySelector('#views-toggle input')?.checked ?? true;
const needsHost = () => viewsOn() && gridMode() !== 'icons';

const loadRuntime = () => new Promise((resolve, reject) => {
  if (window.ort) return resolve(window.ort);
  const script = document.createElement('script');
  script.src = new URL(config.runtime + 'ort.wasm.min.js', location.href).href;
  script.onload = () => resolve(window.ort);
  script.onerror = () => reject(new Error('onnxruntime-web did not load'));
  document.head.append(script);
});

// The model and the runtime's .wasm are over 13 MB each, more than a private window's HTTP cache keeps of one
// file: they are also kept in Cache Storage (where the page is a secure context), under their versioned paths, so
// a reload does not download them again there either. Entries of other versions are dropped.
const STORE = 'teachable-browser';
const fetched = async (url) => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${new URL(url).pathname} answered ${response.status}`);
  return response;
};
const keptBytes = async (urls) => {
  const store = await self.caches?.open(STORE).catch(() => null);
  for (const request of (await store?.keys()) || []) if (!urls.includes(request.url)) await store.delete(request);
  return Promise.all(urls.map(async (url) => {
    let response = await store?.match(url);
    if (!response) {
      response = await fetched(url);
      await store?.put(url, response.clone()).catch(() => {});  // over the quota: downloaded again next time
    }
    return new Uint8Array(await response.arrayBuffer());
  }));
};

const load = async () => {
  const started = performance.now();
  const ort = await loadRuntime();
  const runtime = new URL(config.runtime, location.href).href;
  const [wasm, model] = await keptBytes([runtime + 'ort-wasm-simd-threaded.wasm', new URL(config.model, location.href).href]);
  ort.env.wasm.wasmPaths = runtime;
  ort.env.wasm.wasmBinary = wasm;
  // Threads need a cross-origin isolated page; one thread with SIMD runs everywhere.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  state.session = await ort.InferenceSession.create(model, {executionProviders: ['wasm'], graphOptimizationLevel: 'all'});
  state.loadMs = performance.now() - started;
};

// float32 -> IEEE half (round to nearest), little-endian bytes, as base64.
const halfBits = (value) => {
  const f = new Float32Array([value]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000, exponent = ((u >>> 23) & 0xff) - 127 + 15, mantissa = u & 0x7fffff;
  if (exponent >= 31) return sign | 0x7c00 | (((u >>> 23) & 0xff) === 0xff && mantissa ? 0x200 : 0);
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    const m = (mantissa | 0x800000) >> (1 - exponent);
    return sign | ((m + 0x1000) >> 13);
  }
  return sign | ((exponent << 10) + ((mantissa + 0x1000) >> 13));
};
const base64 = (bytes) => {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
};
const halves = (values) => {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i]);
  return base64(new Uint8Array(out.buffer));
};

const squareCanvas = document.createElement('canvas');
const jpegOf = (square, side, size, quality) => {  // square: uint8 side x side x 3 -> JPEG data URL at size
  squareCanvas.width = squareCanvas.height = side;
  const context = squareCanvas.getContext('2d');
  const image = context.createImageData(side, side);
  for (let i = 0, j = 0; i < square.length; i += 3, j += 4) {
    image.data[j] = square[i]; image.data[j + 1] = square[i + 1]; image.data[j + 2] = square[i + 2]; image.data[j + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  if (size === side) return squareCanvas.toDataURL('image/jpeg', quality);
  const small = document.createElement('canvas');
  small.width = small.height = size;
  small.getContext('2d').drawImage(squareCanvas, 0, 0, size, size);
  return small.toDataURL('image/jpeg', quality);
};

// The icons view, drawn by live-grid.js from the same data the host sends in server mode.
const showIcons = (best, norms, square) => {
  const grid = document.querySelector('#grid');
  if (!grid || !best || !viewsOn() || gridMode() !== 'icons') return;
  const sorted = Float64Array.from(norms).sort();  // numpy's default percentile: linear between nearest ranks
  const rank = 0.95 * (sorted.length - 1), low = Math.floor(rank), high = Math.min(low + 1, sorted.length - 1);
  const p95 = Math.max(sorted[low] + (rank - low) * (sorted[high] - sorted[low]), 1e-6);
  const strength = new Uint8Array(norms.length), indices = new Uint16Array(best.length);
  for (let i = 0; i < norms.length; i++) {
    strength[i] = Math.round(255 * Math.min(1, Math.max(0, norms[i] / p95)));
    indices[i] = Number(best[i]);
  }
  let cells = grid.querySelector('.tm-icon-cells');
  if (!cells) {
    cells = document.createElement('div');
    cells.className = 'tm-icon-cells';
    grid.replaceChildren(cells);
  }
  cells.dataset.rows = config.grid_height;
  cells.dataset.columns = config.grid_width;
  cells.dataset.cells = base64(new Uint8Array(indices.buffer));
  cells.dataset.strength = base64(strength);
  cells.dataset.backdrop = jpegOf(square, config.input_size, 56, 0.7);
};

// The frame's centre square at the model's input size, as the server makes it (frames.center_square): OpenCV's
// INTER_AREA when shrinking (each source pixel weighted by its overlap, as graph_square._area_matrix writes it,
// rounded half up), in a few milliseconds. A camera under the input size (rare) is grown by the canvas's own
// bilinear filter, which differs from OpenCV's by a grey level here and there.
const areaTaps = (side, size) => {
  const scale = side / size, taps = [];
  for (let i = 0; i < size; i++) {
    const start = i * scale, end = (i + 1) * scale, row = [];
    for (let j = Math.floor(start); j < Math.min(side, Math.ceil(end)); j++) {
      const overlap = Math.min(j + 1, end) - Math.max(j, start);
      if (overlap > 0) row.push([j, overlap / scale]);
    }
    taps.push(row);
  }
  return taps;
};
const tapsCache = new Map();
const frameCanvas = document.createElement('canvas');
const makeSquare = (video, size) => {
  const width = video.videoWidth, height = video.videoHeight, side = Math.min(width, height);
  const top = Math.floor((height - side) / 2), left = Math.floor((width - side) / 2);
  const drawn = side > size ? side : size;
  frameCanvas.width = frameCanvas.height = drawn;
  const context = frameCanvas.getContext('2d', {willReadFrequently: true});
  context.drawImage(video, left, top, side, side, 0, 0, drawn, drawn);  // same size when shrinking: a plain copy
  const rgba = context.getImageData(0, 0, drawn, drawn).data;
  const square = new Uint8Array(size * size * 3);
  if (side <= size) {
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { square[j] = rgba[i]; square[j + 1] = rgba[i + 1]; square[j + 2] = rgba[i + 2]; }
    return square;
  }
  if (!tapsCache.has(side)) tapsCache.set(side, areaTaps(side, size));
  const taps = tapsCache.get(side);
  const rows = new Float64Array(size * side * 3);  // vertical pass: size rows x side columns
  for (let y = 0; y < size; y++) {
    for (const [source, weight] of taps[y]) {
      const from = source * side * 4, to = y * side * 3;
      for (let x = 0; x < side; x++) {
        rows[to + 3 * x] += weight * rgba[from + 4 * x];
        rows[to + 3 * x + 1] += weight * rgba[from + 4 * x + 1];
        rows[to + 3 * x + 2] += weight * rgba[from + 4 * x + 2];
      }
    }
  }
  for (let y = 0; y < size; y++) {  // horizontal pass, rounded half up to whole grey levels
    for (let x = 0; x < size; x++) {
      let r = 0, g = 0, b = 0;
      for (const [source, weight] of taps[x]) {
        const at = (y * side + source) * 3;
        r += weight * rows[at]; g += weight * rows[at + 1]; b += weight * rows[at + 2];
      }
      const to = (y * size + x) * 3;
      square[to] = Math.min(255, Math.floor(r + 0.5));
      square[to + 1] = Math.min(255, Math.floor(g + 0.5));
      square[to + 2] = Math.min(255, Math.floor(b + 0.5));
    }
  }
  return square;
};

// A frame goes through the page's Gradio event (#browser-frame) until that event's answer hands over a channel
// token; from then on it is one POST to the frame route (webapp/frame_channel.py), whose answer holds the panels
// it changed, written here where Gradio would have put them. A refused token sends the frame through the event
// again, which hands over a new one.
const throughEvent = (text) => {
  const box = document.querySelector('#browser-frame textarea, #browser-frame input');
  if (!box) return false;
  box.value = text;
  box.dispatchEvent(new Event('input', {bubbles: true}));
  return true;
};

const showPanels = (shown) => {
  for (const [name, html] of Object.entries(shown || {})) {
    const box = document.querySelector(`${config.panels[name]} .prose`);
    if (box) box.innerHTML = html;
  }
};

const throughChannel = async (text, number) => {
  const response = await fetch(new URL(config.frame_route, location.href), {
    method: 'POST', body: text,
    headers: {'Content-Type': 'application/json', 'X-Teachable-Channel': state.channel},
  });
  if (!response.ok) throw new Error(`the frame route answered ${response.status}`);
  const answer = await response.json();
  const mark = `<span data-frame="${number}" data-picture="${answer.picture ? 1 : 0}"></span>`;
  showPanels({...answer.shown, answered: mark});
  state.markSeen = Math.max(state.markSeen, number);
  state.answered = Math.max(state.answered, answer.answered ?? number);
  state.wantsPicture = Boolean(answer.picture);
  state.direct += 1;
};

const send = (message) => {
  const text = JSON.stringify(message);
  if (!state.channel) return throughEvent(text);
  throughChannel(text, message.n).catch(() => {
    state.channel = null;
    state.channelLostAt = message.n;
    throughEvent(text);
  });
  return true;
};

const step = async (video) => {
  const size = config.input_size;
  const square = makeSquare(video, size);
  const started = performance.now();
  const out = await state.session.run({[config.input]: new window.ort.Tensor('uint8', square, [size, size, 3])});
  const ms = performance.now() - started;
  state.times.push(ms);
  state.lastSquare = square;
  state.lastEmbedding = Array.from(out.embedding.data);
  const now = performance.now();
  const message = {v: config.version, e: halves(out.embedding.data), n: ++state.sent};
  const recording = Boolean(root.dataset.recording);
  // An example's picture with every frame of a take; otherwise only when the host asked for one (its answer said
  // the tray would keep a frame like the last one, which came without), at most once a second.
  if (recording || (state.wantsPicture && now - state.lastThumbnail >= THUMBNAIL_EVERY_MS)) {
    message.t = jpegOf(square, size, size, recording ? 0.95 : 0.8).split(',')[1];
    state.lastThumbnail = now;
    state.wantsPicture = false;
  }
  state.sentAt = now;
  send(message);
  if (out.icon_best) showIcons(out.icon_best.data, out.cell_norms.data, square);
  return ms;
};

// The median of the first frames (after the one that warms up), then of the latest ones: a computer that slows
// down later (a phone that heats up, a laptop that gets busy) hands its camera to the host too.
const tooSlow = () => {
  if (config.live_model !== 'auto' || state.times.length < CHECKED_FRAMES + 1) return false;
  const checked = state.times.slice(1).slice(-2 * CHECKED_FRAMES).sort((a, b) => a - b);
  state.checkedMs = checked[Math.floor(checked.length / 2)];
  return state.checkedMs > config.slow_frame_ms;
};

const answered = () => {
  const mark = document.querySelector('#browser-answered [data-frame]');
  const number = mark ? Number(mark.dataset.frame) : 0;
  if (number > state.markSeen) {  // a new answer through the page's event
    state.markSeen = number;
    state.wantsPicture = mark.dataset.picture === '1';
    if (!state.channel && number >= state.channelLostAt) state.channel = mark.dataset.channel || null;
  }
  return Math.max(number, state.answered);
};

const tick = async () => {
  if (state.where === 'server' && state.slow !== undefined) return;  // handed to the host for good
  const ready = document.querySelector('[data-page-ready]');
  const video = document.querySelector('#cam video');
  if (!state.session || !ready || !(video?.videoWidth > 0) || state.busy) return;
  if (needsHost()) {
    if (state.where !== 'server') place('server', `The grid's ${gridMode()} view needs the model on the host: frames go there while it is shown.`);
    return;
  }
  if (state.where !== 'browser') place('browser', here);
  if (answered() < state.sent && performance.now() - state.sentAt < ANSWER_WAIT_MS) return;  // one frame at a time
  state.busy = true;
  try {
    await step(video);
    if (tooSlow()) {
      state.slow = state.checkedMs;
      place('server', `This computer takes ${Math.round(state.checkedMs)} ms a frame, too slow for the camera: the host runs the model.`);
    }
  } catch (error) {
    state.slow = null;
    place('server', `The model stopped on this computer (${error.message || error}): the host runs it.`);
  } finally {
    state.busy = false;
  }
};

if (config.live_model === 'server') {
  place('server', onHost);
} else {
  place('loading', 'Loading the model into this browser…');
  load().then(() => {
    say(`The model loaded in ${(state.loadMs / 1000).toFixed(1)} s; start the camera.`);
    setInterval(tick, 1000 / (config.frames_per_second || 10));
  }).catch((error) => {
    state.slow = null;
    place('server', `The model could not load in this browser (${error.message || error}): the host runs it.`);
  });
}
