// The avatar live page: opens a session (POST /api/sessions), streams it over the
// WebSocket of docs/live-protocol.md and sends text, microphone audio and controls.

import { Player, parseFrame } from "./player.js";
import { Mic, micErrorText } from "./mic.js";

const $ = (id) => document.getElementById(id);
const CONTROL_SEND_MS = 100; // slider moves are sent at most this often (the server eases anyway)
const STATUS_MS = 250;
const LOG_KEPT = 6;
const SPEAKING_EVENTS = { started: "started", finished: "finished", interrupted: "was interrupted" };
const HTTP_LABEL = {
  404: "Not found",
  413: "Too large",
  422: "Not accepted",
  503: "Server busy",
};

const player = new Player($("video"));
const mic = new Mic({ onStart: startSegment, onChunk: sendMicChunk });
// The server takes audio segments of at most 120 s: a longer talk is sent as several.
const MIC_SEGMENT_SECONDS = 100;

const page = {
  info: null, // GET /api/info
  photo: null, // the chosen File, null for the bundled portrait
  session: null, // the POST /api/sessions reply
  socket: null,
  state: "off", // off | connecting | live
  closedReason: "", // set by a "closed" message, so the socket's close is not reported twice
  opening: null, // the promise of a session being opened
  touched: new Set(), // valence / arousal once the user moved them (else the emotion decides)
  pendingControls: new Set(),
  controlsTimer: 0,
  micRate: 0, // sample rate of the open microphone segment
  micSamples: 0, // samples sent in it
};

// -- words on the page ------------------------------------------------------------------
function showError(text, status = "") {
  const box = $("error");
  box.textContent = text;
  box.dataset.status = String(status);
  box.hidden = false;
}

function clearError() {
  const box = $("error");
  box.textContent = "";
  box.dataset.status = "";
  box.hidden = true;
}

function log(text) {
  const list = $("log");
  const item = document.createElement("li");
  item.textContent = text;
  list.prepend(item);
  while (list.children.length > LOG_KEPT) list.lastElementChild.remove();
}

/** The one-line message of an error reply: {"error": ...}, or FastAPI's {"detail": [...]}. */
async function replyMessage(response) {
  const fallback = `${response.status} ${response.statusText}`.trim();
  let body;
  try {
    body = await response.json();
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return fallback; // not JSON (a proxy's page, say)
  }
  if (body && body.error) return body.error;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  return (body && body.detail) || fallback;
}

async function showHttpError(response) {
  const label = HTTP_LABEL[response.status] || `Error ${response.status}`;
  showError(`${label}: ${await replyMessage(response)}`, response.status);
}

// -- photo ------------------------------------------------------------------------------
function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** A file over the server's limit is refused here, before a long upload that fails anyway. */
function photoTooLarge(file) {
  const limit = page.info ? page.info.limits.max_upload_bytes : Infinity;
  if (file.size <= limit) return false;
  showError(`Too large: the photo ${file.name} is ${megabytes(file.size)}, the server takes at most ` +
            `${megabytes(limit)}. Choose a smaller photo (it is resized to 512 px anyway).`, 413);
  return true;
}

function choosePhoto() {
  clearError();
  const file = $("photo").files[0];
  if (!file) return useBundled();
  if (photoTooLarge(file)) {
    $("photo").value = "";
    return useBundled(false);
  }
  page.photo = file;
  $("photo-note").textContent = `Using ${file.name} (${megabytes(file.size)}).`;
  const preview = $("preview");
  URL.revokeObjectURL(preview.dataset.url || "");
  preview.dataset.url = URL.createObjectURL(file);
  preview.src = preview.dataset.url;
}

function useBundled(clear = true) {
  if (clear) clearError();
  page.photo = null;
  $("photo").value = "";
  $("photo-note").textContent = "Using the bundled portrait.";
  $("preview").src = "/api/bundled.jpg";
}

function previewFailed() {
  if (!page.photo) return;
  // the server has the last word (it reads more formats), but say it now
  showError(`Cannot read the image in ${page.photo.name}: the browser cannot show it. Use a JPEG, PNG or WebP photo.`);
}

// -- session ----------------------------------------------------------------------------
function sessionForm() {
  const form = new FormData();
  if (page.photo) form.append("photo", page.photo, page.photo.name);
  form.append("motion", $("motion").value || "rules");
  form.append("seed", String(parseInt($("seed").value, 10) || 0));
  if ($("emotion").value) form.append("emotion", $("emotion").value);
  for (const field of ["valence", "arousal"]) {
    if (page.touched.has(field)) form.append(field, $(field).value);
  }
  for (const field of ["head_motion", "gaze_x", "gaze_y", "head_distance"]) form.append(field, $(field).value);
  return form;
}

function setState(state) {
  page.state = state;
  $("start").disabled = state === "connecting";
  $("end").disabled = state !== "live";
  $("download").disabled = state !== "live";
  $("start").textContent = state === "live" ? "Restart session" : "Start session";
  updateStatus();
}

/** Open a session and its stream; resolves once the stream is open, null on failure. */
function openSession() {
  if (!page.opening) page.opening = connect().finally(() => { page.opening = null; });
  return page.opening;
}

async function connect() {
  closeSession();
  setState("connecting");
  let response;
  try {
    response = await fetch("/api/sessions", { method: "POST", body: sessionForm() });
  } catch (error) {
    return failOpen(`Cannot reach the server (${error.message}).` +
                    (page.photo ? " If the photo is large, try a smaller one." : ""));
  }
  if (!response.ok) {
    await showHttpError(response);
    return failOpen();
  }
  page.session = await response.json();
  return openSocket(page.session);
}

function failOpen(text = "") {
  if (text) showError(text);
  setState("off");
  return null;
}

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

function openSocket(session) {
  return new Promise((resolve) => {
    const socket = new WebSocket(socketUrl(session.stream));
    socket.binaryType = "arraybuffer";
    page.socket = socket;
    page.closedReason = "";
    player.reset();
    player.frameSeconds = 1 / (session.fps || 25);
    socket.onopen = () => {
      setState("live");
      resolve(socket);
    };
    socket.onmessage = (event) => receive(event.data);
    socket.onclose = (event) => {
      resolve(null);
      socketClosed(socket, event);
    };
  });
}

function socketClosed(socket, event) {
  if (socket !== page.socket) return; // an old session we closed ourselves
  if (page.state === "connecting") forgetSession(page.session);
  page.socket = null;
  page.session = null;
  stopMic(false);
  setState("off");
  if (page.closedReason) return; // the "closed" message already said why
  const why = event.reason ? `: ${event.reason}` : ` (code ${event.code})`;
  showError(`The connection to the server was lost${why}. Start a new session.`);
}

/**
 * A session whose stream never opened is freed only by the server's idle timeout (minutes),
 * holding one of its few places until then: delete it now.
 */
function forgetSession(session) {
  if (!session) return;
  fetch(`/api/sessions/${encodeURIComponent(session.id)}`, { method: "DELETE" })
    .catch(() => {}); // unreachable: the server's idle timeout frees it instead
}

/** Close our session; the server frees it when its stream's client leaves. */
function closeSession() {
  stopMic(false);
  const socket = page.socket;
  page.socket = null;
  page.session = null;
  if (socket) socket.close(1000, "closed by the page");
  setState("off");
}

function send(message) {
  if (page.socket && page.socket.readyState === WebSocket.OPEN) page.socket.send(JSON.stringify(message));
}

function sendBinary(buffer) {
  if (page.socket && page.socket.readyState === WebSocket.OPEN) page.socket.send(buffer);
}

function startSegment(rate) {
  page.micRate = rate;
  page.micSamples = 0;
  send({ type: "audio_start", sample_rate: rate });
}

function sendMicChunk(buffer) {
  if (page.micSamples >= MIC_SEGMENT_SECONDS * page.micRate) {
    send({ type: "audio_end" });
    startSegment(page.micRate);
  }
  sendBinary(buffer);
  page.micSamples += buffer.byteLength >> 1;
}

// -- what the server sends --------------------------------------------------------------
function receive(data) {
  if (data instanceof ArrayBuffer) return receiveFrame(data);
  let message;
  try {
    message = JSON.parse(data);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return showError("The server sent a message that is not JSON.");
  }
  const handler = HANDLERS[message.type];
  if (handler) handler(message);
}

function receiveFrame(data) {
  let frame;
  try {
    frame = parseFrame(data);
  } catch (error) {
    return showError(`The server sent a bad frame: ${error.message}.`);
  }
  player.push(frame);
}

/** "emotion happy; gaze 5, 0" from a controls reply (without its type and request id). */
function controlsText(message) {
  return Object.entries(message)
    .filter(([key, value]) => key !== "type" && key !== "id" && value !== null)
    .map(([key, value]) => `${key} ${Array.isArray(value) ? value.join(", ") : value}`)
    .join("; ");
}

const HANDLERS = {
  session: (m) => log(`Session open: ${m.width}×${m.height} at ${m.fps} fps, motion ${m.motion}.`),
  accepted: (m) => log(`Utterance ${m.utterance} queued (${m.kind}).`),
  event: (m) => {
    if (m.event === "error") return showError(`Utterance ${m.utterance} failed: ${m.message || "unknown error"}`);
    log(`Utterance ${m.utterance} ${SPEAKING_EVENTS[m.event] || m.event}.`);
  },
  controls: (m) => log(`Controls: ${controlsText(m)}.`),
  error: (m) => {
    if (m.fatal) page.closedReason = m.message; // the socket closes next: this says why
    showError(`${m.fatal ? "The session ended: " : "The server said: "}${m.message}`);
  },
  closed: (m) => {
    page.closedReason = m.reason || "closed";
    showError(`The server closed the session: ${page.closedReason}. Start a new session.`);
  },
};

// -- buttons ----------------------------------------------------------------------------
function onStart() {
  clearError();
  player.unlock(audioRate()); // within the click: browsers only start sound from a gesture
  openSession();
}

async function onSpeak() {
  const text = $("text").value.trim();
  if (!text) return showError("Type some text to speak first.");
  clearError();
  player.unlock(audioRate());
  if (page.state !== "live" && !(await openSession())) return;
  send({ type: "text", text });
}

function onStop() {
  stopMic(true);
  send({ type: "interrupt" });
}

async function onMic() {
  if (mic.active) return stopMic(true);
  clearError();
  player.unlock(audioRate());
  if (page.state !== "live" && !(await openSession())) return;
  try {
    await mic.start();
  } catch (error) {
    return showError(micErrorText(error));
  }
  $("mic").setAttribute("aria-pressed", "true");
  $("mic").textContent = "Finish talking";
}

function stopMic(endSegment) {
  if (!mic.active) return;
  mic.stop();
  if (endSegment) send({ type: "audio_end" });
  $("mic").setAttribute("aria-pressed", "false");
  $("mic").textContent = "Talk";
}

async function onDownload() {
  if (!page.session) return showError("Start a session and let it say something first.");
  const { id } = page.session;
  clearError();
  $("download-note").textContent = "Rendering the mp4…";
  let response;
  try {
    response = await fetch(`/api/sessions/${encodeURIComponent(id)}/last.mp4`);
  } catch (error) {
    $("download-note").textContent = "";
    return showError(`Cannot reach the server (${error.message}).`);
  }
  if (!response.ok) {
    $("download-note").textContent = "";
    return showHttpError(response);
  }
  saveBlob(await response.blob(), `avatar-${id.slice(0, 6)}.mp4`);
}

function saveBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000); // the download must have started by then
  $("download-note").textContent = `Saved ${name} (${Math.round(blob.size / 1024)} kB).`;
}

function audioRate() {
  return (page.session && page.session.audio_rate) || (page.info && page.info.audio_rate) || 24000;
}

// -- controls ---------------------------------------------------------------------------
function showControlValue(input) {
  const out = $(`${input.id}-out`);
  if (out) out.textContent = input.value;
}

function onControl(event) {
  const input = event.target;
  const field = input.dataset.field;
  if (!field) return;
  if (field === "valence" || field === "arousal") page.touched.add(field);
  showControlValue(input);
  page.pendingControls.add(field);
  if (!page.controlsTimer) page.controlsTimer = setTimeout(flushControls, CONTROL_SEND_MS);
}

/** Send the controls that changed since the last message, as one message. */
function flushControls() {
  page.controlsTimer = 0;
  const message = { type: "controls" };
  for (const field of page.pendingControls) {
    if (field === "emotion") message.emotion = $("emotion").value || "neutral"; // "(default)" is neutral
    else if (field === "gaze_x" || field === "gaze_y") message.gaze = [Number($("gaze_x").value), Number($("gaze_y").value)];
    else message[field] = Number($(field).value);
  }
  page.pendingControls.clear();
  if (page.state === "live") send(message); // before a session they go with the POST instead
}

// -- status line ------------------------------------------------------------------------
function updateStatus() {
  const { stats } = player;
  const state = page.state === "live" ? (stats.speaking ? "speaking" : "idle") : page.state === "connecting" ? "connecting" : "off";
  const status = $("status");
  status.dataset.state = state;
  status.dataset.clock = player.mode || "none";
  $("state").textContent = { off: "no session", connecting: "connecting…", idle: "idle", speaking: "speaking" }[state];
  $("fps").textContent = String(page.state === "live" ? player.fps() : 0);
  $("frames").textContent = String(stats.drawn);
  $("dropped").textContent = String(stats.dropped + stats.late);
  $("late").textContent = String(stats.late);
  const offset = player.avOffset();
  $("av-offset").textContent = offset ? `${offset.mean >= 0 ? "+" : ""}${offset.mean.toFixed(0)}` : "–";
  status.dataset.avMean = offset ? offset.mean.toFixed(1) : "";
  status.dataset.avMax = offset ? offset.max.toFixed(1) : "";
}

// -- start up ---------------------------------------------------------------------------
function fillSelect(select, values, keepFirst) {
  if (!keepFirst) select.replaceChildren();
  for (const value of values) select.append(new Option(value, value));
}

async function loadInfo() {
  let response;
  try {
    response = await fetch("/api/info");
  } catch (error) {
    return showError(`Cannot reach the server (${error.message}). Is avatar serve running?`);
  }
  if (!response.ok) return showHttpError(response);
  page.info = await response.json();
  fillSelect($("motion"), page.info.generators, false);
  fillSelect($("emotion"), page.info.emotions, true);
  $("text").maxLength = page.info.limits.max_text_chars;
  document.body.dataset.ready = "1";
}

function bind() {
  $("photo").addEventListener("change", choosePhoto);
  $("use-bundled").addEventListener("click", () => useBundled());
  $("preview").addEventListener("error", previewFailed);
  $("start").addEventListener("click", onStart);
  $("end").addEventListener("click", closeSession);
  $("speak").addEventListener("click", onSpeak);
  $("stop").addEventListener("click", onStop);
  $("mic").addEventListener("click", onMic);
  $("download").addEventListener("click", onDownload);
  // "change" too: a menu changed by script or by some assistive tools fires no "input"
  $("controls").addEventListener("input", onControl);
  $("controls").addEventListener("change", onControl);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) onSpeak();
  });
  window.addEventListener("pagehide", closeSession); // free the server's session at once
}

bind();
setState("off");
setInterval(updateStatus, STATUS_MS);
loadInfo();
