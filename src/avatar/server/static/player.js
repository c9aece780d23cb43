// The frame player: plays each frame's PCM back to back on an AudioContext and shows
// each frame's picture when its audio reaches the speakers (docs/live-protocol.md, section 2).

const HEADER_BYTES = 24;
const MAGIC = "AVF1";
export const FLAG_SPEAKING = 1;
export const FLAG_DROPPED = 2;

// Audio is scheduled this far ahead of the output: it absorbs network and decode jitter.
const JITTER_S = 0.12;
// After a stall (a background tab, a slow network) frames arrive in a burst; more audio
// queued than this and frames are dropped until the queue is back to the jitter buffer,
// so the latency does not grow for the rest of the session.
const MAX_AHEAD_S = 0.5;
// Scheduling closer to the audio thread's clock than this risks a truncated chunk.
const MIN_LEAD_S = 0.01;
const OFFSETS_KEPT = 25; // the A/V offset shown is the mean over this many pictures
const MAX_PENDING = 64; // pictures waiting to be shown (rAF stops in a hidden tab)

/** One binary frame message -> {index, utterance, flags, pcm (DataView), jpeg (Uint8Array|null)}. */
export function parseFrame(buffer) {
  if (buffer.byteLength < HEADER_BYTES) throw new Error(`a frame of ${buffer.byteLength} bytes is shorter than its header`);
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  const audioBytes = view.getUint32(16, true);
  const jpegBytes = view.getUint32(20, true);
  if (magic !== MAGIC || HEADER_BYTES + audioBytes + jpegBytes !== buffer.byteLength) {
    throw new Error("a binary message that is not an avatar frame");
  }
  return {
    index: view.getUint32(4, true),
    utterance: view.getInt32(8, true),
    flags: view.getUint32(12, true),
    pcm: new DataView(buffer, HEADER_BYTES, audioBytes),
    jpeg: jpegBytes ? new Uint8Array(buffer, HEADER_BYTES + audioBytes, jpegBytes) : null,
  };
}

/** int16 little-endian PCM -> float samples in [-1, 1]. DataView: correct on any endianness. */
function pcmToFloat(pcm) {
  const samples = new Float32Array(pcm.byteLength >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = pcm.getInt16(2 * i, true) / 32768;
  return samples;
}

export class Player {
  constructor(canvas) {
    this.canvas = canvas;
    this.context2d = canvas.getContext("2d");
    this.audio = null; // AudioContext, made on the first user gesture
    this.audioRate = 24000;
    this.frameSeconds = 0.04; // 1 / the session's fps
    this.reset();
    this.drawLoop = this.drawLoop.bind(this);
    requestAnimationFrame(this.drawLoop);
  }

  /** Statistics and the timeline for a new stream. */
  reset() {
    (this.pending || []).forEach((entry) => this.discard(entry));
    this.nextTime = null; // when the next frame's audio starts, on the clock below
    this.catchingUp = false; // dropping frames after a burst, down to the jitter buffer
    this.mode = null; // "audio": the AudioContext's output clock; "wall": no sound, performance.now()
    this.pending = []; // frames waiting for their time: {time, flags, bitmap}
    this.arrivals = []; // performance.now() of frames received in the last second
    this.offsets = [];
    // dropped: pictures this page did not show in time; late: pictures the server did not send
    this.stats = { received: 0, drawn: 0, dropped: 0, late: 0, speaking: false };
  }

  /**
   * Make or resume the AudioContext. Call it from a click handler: browsers only let
   * sound start from a user gesture, and resume() must be called within that gesture.
   */
  unlock(audioRate) {
    this.audioRate = audioRate || this.audioRate;
    if (!this.audio) this.audio = makeAudioContext(this.audioRate);
    // a refused resume() leaves the context suspended: push() then paces pictures on the wall clock
    if (this.audio.state === "suspended") this.audio.resume().catch(() => {});
  }

  /** Schedule one parsed frame: its audio now, its picture for when that audio plays. */
  push(frame) {
    this.countArrival();
    const mode = this.audio && this.audio.state === "running" ? "audio" : "wall";
    if (mode !== this.mode) this.switchClock(mode);
    const start = this.schedule(frame);
    if (start === null) return;
    const picture = Boolean(frame.jpeg) && !(frame.flags & FLAG_DROPPED);
    const entry = { time: start, flags: frame.flags, picture, bitmap: null, gone: false };
    if (picture) decodePicture(frame.jpeg).then((bitmap) => this.decoded(entry, bitmap), () => this.discard(entry));
    else this.stats.late++; // the server was late and sent this frame's sound only
    this.pending.push(entry);
    while (this.pending.length > MAX_PENDING) this.discard(this.pending.shift());
  }

  /** The start time of this frame's audio, or null if the frame is dropped to catch up. */
  schedule(frame) {
    const samples = frame.pcm.byteLength >> 1;
    const seconds = samples / this.audioRate;
    const lead = this.processingTime();
    if (this.nextTime === null || this.nextTime < lead + MIN_LEAD_S) this.nextTime = lead + JITTER_S; // underrun
    if (this.nextTime - lead > MAX_AHEAD_S) this.catchingUp = true;
    if (this.catchingUp && this.nextTime - lead > JITTER_S) {
      this.stats.dropped++; // not scheduled: real time catches up with the queue
      return null;
    }
    this.catchingUp = false;
    const start = this.nextTime;
    if (this.mode === "audio" && samples) this.playPcm(frame.pcm, start);
    this.nextTime += seconds || this.frameSeconds; // a frame without sound still takes its time
    return start;
  }

  playPcm(pcm, start) {
    const buffer = this.audio.createBuffer(1, pcm.byteLength >> 1, this.audioRate);
    buffer.copyToChannel(pcmToFloat(pcm), 0);
    const source = this.audio.createBufferSource();
    source.buffer = buffer;
    source.connect(this.audio.destination);
    source.start(start);
  }

  /** Times on the old clock mean nothing on the new one: restart the timeline. */
  switchClock(mode) {
    this.mode = mode;
    this.nextTime = null;
    this.pending.splice(0).forEach((entry) => this.discard(entry));
  }

  /** Where new audio may be scheduled (the audio thread's clock). */
  processingTime() {
    return this.mode === "audio" ? this.audio.currentTime : performance.now() / 1000;
  }

  /** The time of the sample leaving the speakers now: pictures follow this clock. */
  audibleTime() {
    if (this.mode !== "audio") return performance.now() / 1000;
    const stamp = this.audio.getOutputTimestamp ? this.audio.getOutputTimestamp() : null;
    if (stamp && stamp.contextTime > 0 && stamp.performanceTime > 0) {
      return stamp.contextTime + (performance.now() - stamp.performanceTime) / 1000;
    }
    return this.audio.currentTime - (this.audio.outputLatency || this.audio.baseLatency || 0);
  }

  /** Every display refresh: show the newest picture whose audio has started. */
  drawLoop() {
    requestAnimationFrame(this.drawLoop);
    if (!this.pending.length) return;
    const now = this.audibleTime();
    let due = 0;
    while (due < this.pending.length && this.pending[due].time <= now) due++;
    if (!due) return;
    const entries = this.pending.splice(0, due);
    this.stats.speaking = Boolean(entries[due - 1].flags & FLAG_SPEAKING);
    const shown = entries.filter((entry) => entry.bitmap).pop();
    for (const entry of entries) {
      if (entry !== shown) this.discard(entry); // overtaken by a newer picture, or not decoded in time
    }
    if (shown) this.draw(shown, now);
  }

  draw(entry, now) {
    const { bitmap } = entry;
    if (this.canvas.width !== bitmap.width || this.canvas.height !== bitmap.height) {
      this.canvas.width = bitmap.width;
      this.canvas.height = bitmap.height;
    }
    this.context2d.drawImage(bitmap, 0, 0);
    bitmap.close();
    entry.bitmap = null;
    entry.gone = true;
    this.stats.drawn++;
    this.canvas.dataset.frames = String(this.stats.drawn);
    this.offsets.push((now - entry.time) * 1000); // > 0: the picture is shown after its sound
    if (this.offsets.length > OFFSETS_KEPT) this.offsets.shift();
  }

  decoded(entry, bitmap) {
    if (entry.gone) bitmap.close(); // its time passed while it was decoding
    else entry.bitmap = bitmap;
  }

  /** Forget a picture that will not be shown; it counts as dropped. */
  discard(entry) {
    if (entry.gone) return;
    entry.gone = true;
    if (entry.picture) this.stats.dropped++;
    if (entry.bitmap) entry.bitmap.close();
    entry.bitmap = null;
  }

  countArrival() {
    const now = performance.now();
    this.stats.received++;
    this.arrivals.push(now);
    while (this.arrivals[0] < now - 1000) this.arrivals.shift();
  }

  /** Frames received in the last second. */
  fps() {
    const now = performance.now();
    return this.arrivals.filter((t) => t >= now - 1000).length;
  }

  /** {mean, max} A/V offset in ms over the last pictures, null before any. */
  avOffset() {
    if (!this.offsets.length) return null;
    const mean = this.offsets.reduce((a, b) => a + b, 0) / this.offsets.length;
    const max = Math.max(...this.offsets.map(Math.abs));
    return { mean, max };
  }
}

function makeAudioContext(rate) {
  // At the stream's own rate the per-frame buffers join sample-exactly (no resampling per chunk).
  try {
    return new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
  } catch (error) {
    if (!(error instanceof DOMException || error instanceof TypeError)) throw error;
    return new AudioContext({ latencyHint: "interactive" }); // a browser that cannot run at that rate
  }
}

function decodePicture(jpeg) {
  return createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
}
