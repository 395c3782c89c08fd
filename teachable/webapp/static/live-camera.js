// Camera problems in words, with the fix, instead of Gradio's untranslated keys.
const cameraHelp = (text) => {
  const box = document.querySelector('#camera-help');
  if (box) box.textContent = text;
};
const otherWays = ' Or use the Image and Video tabs.';
const insecure = () => {
  const address = `https://${location.host}${location.pathname}`;
  return `This page was opened over http:// from another computer, so the browser blocks the camera. Open ${address} instead (the app must be started with --https).` + otherWays;
};
const cameraMessages = {
  NotAllowedError: 'The browser was told not to use the camera. Click the camera icon in the address bar, allow the camera, then reload the page.' + otherWays,
  SecurityError: 'The browser blocks the camera on this page.' + otherWays,
  NotFoundError: 'No camera was found. Plug one in and reload the page.' + otherWays,
  OverconstrainedError: 'No camera here can give a picture of the size asked for.' + otherWays,
  NotReadableError: 'The camera is in use by another program (a video call?). Close it, then click the camera button again.' + otherWays,
  AbortError: 'The camera could not start. Close other programs that use it, then try again.' + otherWays,
};
const explain = (error) => cameraMessages[error?.name] || `The camera could not start (${error?.name || error}).` + otherWays;
const showWhenReady = (text) => {
  const tryShow = () => document.querySelector('#camera-help') ? cameraHelp(text) : setTimeout(tryShow, 200);
  tryShow();
};
if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
  showWhenReady(window.isSecureContext ? 'This browser gives web pages no camera.' + otherWays : insecure());
} else {
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    document.documentElement.dataset.camera = 'requested';  // the camera opens at most once by itself
    try {
      const stream = await getUserMedia(constraints);
      cameraHelp('');
      return stream;
    } catch (error) {
      cameraHelp(explain(error));
      throw error;
    }
  };
}
// One click starts the camera and the predictions. Gradio's webcam takes two (open the camera, then start the
// stream from a control on the video): here the stream starts by itself as soon as the preview plays, and again
// whenever it stops while the preview plays (the stream's time limit), and that control is hidden (CSS). Where
// the browser already lets this page use the camera (a reload, a later visit), the camera opens without a click.
const GRADIO_START = 'Click to Access Webcam', START = 'Start camera';
const cameraStartWords = () => {  // the text node of Gradio's button (beside its icon)
  const root = document.querySelector('#cam');
  const walker = root && document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker?.nextNode(); node; node = walker.nextNode()) {
    if ([GRADIO_START, START].includes(node.nodeValue.trim())) return node;
  }
  return null;
};
const cameraStart = () => cameraStartWords()?.parentElement.closest('button');
setInterval(() => {
  const words = cameraStartWords();
  if (words && words.nodeValue.trim() === GRADIO_START) words.nodeValue = START;
  // Frames wait for the page's first draw, which gives this page its session (page.OPENED_MARKER).
  const ready = document.querySelector('[data-page-ready]');
  const video = document.querySelector('#cam video');
  const capture = document.querySelector('#cam .capture-button');
  // Frames stream to the host only while it runs the model (browser.js: dataset.liveModel).
  const toHost = document.documentElement.dataset.liveModel === 'server';
  if (ready && toHost && video?.videoWidth > 0 && capture?.querySelector('[title="start recording"]')) capture.click();
  if (!toHost && capture?.querySelector('[title="stop recording"]')) capture.click();
}, 250);
if (window.isSecureContext && navigator.permissions) {
  navigator.permissions.query({name: 'camera'}).then((status) => {
    if (status.state !== 'granted') return;
    const open = (tries) => {
      if (document.documentElement.dataset.camera === 'requested') return;  // a click got there first
      const start = cameraStart();
      if (start) start.click(); else if (tries) setTimeout(() => open(tries - 1), 200);
    };
    open(50);
  }).catch(() => {});
}
// Gradio reports the same problems as toasts whose text is an untranslated key: say them in words too.
const keys = {'image.no_webcam_support': () => (window.isSecureContext ? 'This browser gives web pages no camera.' + otherWays : insecure()),
              'image.allow_webcam_access': () => cameraMessages.NotAllowedError};
new MutationObserver(() => {
  for (const node of document.querySelectorAll('.toast-text, .toast-body div')) {
    for (const [key, words] of Object.entries(keys)) {
      if (node.childElementCount === 0 && node.textContent.includes(key)) node.textContent = words();
    }
  }
}).observe(document.body, {childList: true, subtree: true});
