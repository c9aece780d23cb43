// The microphone as 16-bit PCM chunks of ~40 ms, for the audio_start / binary / audio_end
// messages of docs/live-protocol.md. An AudioWorklet does the chunking off the main
// thread; browsers without one fall back to a ScriptProcessor.

const CHUNK_SECONDS = 0.04;
const FALLBACK_BUFFER = 2048; // ScriptProcessor block (a power of two, ~43 ms at 48 kHz)
const MAX_RATE = 96000; // the highest audio_start sample_rate the server takes
const SAFE_RATE = 48000; // used instead on devices that run faster than that

// The worklet's source, loaded from a Blob URL so the page needs no second file for it.
// It converts to int16 itself so that only small transferable buffers cross threads.
const WORKLET_SOURCE = `
class PcmChunker extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.samples = options.processorOptions.samples;
    this.chunk = new Int16Array(this.samples);
    this.filled = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.chunk[this.filled++] = s < 0 ? s * 32768 : s * 32767;
      if (this.filled === this.chunk.length) {
        this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]); // detaches this.chunk
        this.chunk = new Int16Array(this.samples);
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor("pcm-chunker", PcmChunker);
`;

/** Float samples -> int16 (the ScriptProcessor path; the worklet converts by itself). */
function toInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 32768 : s * 32767;
  }
  return out.buffer;
}

/** Words for what went wrong with the microphone. */
export function micErrorText(error) {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    return "The microphone needs a secure page: open it at https://… (behind a TLS proxy) or at http://127.0.0.1.";
  }
  if (error && error.name === "NotAllowedError") return "The microphone was not allowed: allow it in the browser's site settings.";
  if (error && error.name === "NotFoundError") return "No microphone was found on this device.";
  return `The microphone could not start: ${error && error.message ? error.message : error}.`;
}

export class Mic {
  /** onStart(sampleRate) runs before the first onChunk(ArrayBuffer of int16). */
  constructor({ onStart, onChunk }) {
    this.onStart = onStart;
    this.onChunk = onChunk;
    this.context = null;
    this.stream = null;
    this.node = null;
  }

  get active() {
    return this.context !== null;
  }

  /**
   * Call from a click: the AudioContext is made within the gesture. It has its own
   * context at the device's rate (the player's runs at the stream's rate, and some
   * browsers refuse to connect a microphone to a context at another rate).
   */
  async start() {
    if (!window.isSecureContext || !navigator.mediaDevices) throw new Error(micErrorText(null));
    this.context = new AudioContext();
    if (this.context.sampleRate > MAX_RATE) {
      this.context.close();
      this.context = new AudioContext({ sampleRate: SAFE_RATE }); // the browser resamples the device
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      const source = this.context.createMediaStreamSource(this.stream);
      this.node = await this.chunker();
      // a node that reaches no destination is not pulled by the audio graph: route it to a mute gain
      const mute = this.context.createGain();
      mute.gain.value = 0;
      source.connect(this.node);
      this.node.connect(mute).connect(this.context.destination);
      if (this.context.state === "suspended") await this.context.resume();
      this.onStart(this.context.sampleRate);
    } catch (error) {
      this.stop();
      throw error;
    }
  }

  /** An AudioWorklet node when the browser has them, else a ScriptProcessor. */
  async chunker() {
    const samples = Math.round(this.context.sampleRate * CHUNK_SECONDS);
    if (this.context.audioWorklet) {
      const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: "text/javascript" }));
      try {
        await this.context.audioWorklet.addModule(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      const node = new AudioWorkletNode(this.context, "pcm-chunker", { processorOptions: { samples } });
      node.port.onmessage = (event) => this.deliver(event.data);
      return node;
    }
    const node = this.context.createScriptProcessor(FALLBACK_BUFFER, 1, 1);
    node.onaudioprocess = (event) => this.deliver(toInt16(event.inputBuffer.getChannelData(0)));
    return node;
  }

  deliver(buffer) {
    if (this.active) this.onChunk(buffer);
  }

  /** Release the device. The last partial chunk (< 40 ms, the end of a release) is not sent. */
  stop() {
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.node) this.node.disconnect();
    // close() only fails on a context that is closed already: nothing is left to free then
    if (this.context) this.context.close().catch(() => {});
    this.context = this.stream = this.node = null;
  }
}
