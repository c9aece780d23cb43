"""A live session: one photo that speaks whatever arrives, frame by frame, in real time.

The same stages as the file path (avatar.pipeline): TTS or audio -> features -> motion
generator -> MotionSeq -> WarpRenderer. What is new is only the timing: text is spoken
sentence by sentence as it is synthesised (a worker thread), streamed audio is turned
into mouth motion frame by frame (avatar.live.audio_stream), and between utterances the
face idles (avatar.live.timeline). The caller pulls frames at the session's fps.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from avatar.audio.types import Audio, AudioFeatures, Phone, Speech
from avatar.config import AUDIO, LIVE, VIDEO, LiveConfig
from avatar.errors import AvatarError
from avatar.generators.base import Controls
from avatar.generators.registry import get_generator
from avatar.live.timeline import Chunk, Timeline
from avatar.motion.types import MotionFrame, MotionSeq
from avatar.pipeline import Portrait

_SPEECH_VAD = 1.0  # TTS speech: voice activity is known from its phones


@dataclass
class LiveFrame:
    """One frame of the live stream with the audio that plays during it."""

    index: int  # frame number since the session started
    image: np.ndarray | None  # (H, W, 3) uint8 RGB; None if the caller skipped rendering
    audio: np.ndarray  # (samples_per_frame,) float32 at LiveConfig.audio_rate
    utterance: int | None  # which utterance this frame speaks, None while idle
    # (kind, utterance, message): kind "started" | "finished" | "interrupted" | "error"
    events: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def speaking(self) -> bool:
        return self.utterance is not None


def silent_features(num_frames: int, fps: float) -> AudioFeatures:
    """Features of silence: what the generators see while nobody speaks."""
    zeros = np.zeros(num_frames, np.float32)
    return AudioFeatures(fps=fps, energy=zeros, pitch=zeros, onset=zeros, vad=zeros,
                         mel=np.zeros((num_frames, AUDIO.n_mels), np.float32))


class LiveSession:
    """Push text or audio; pull :class:`LiveFrame` objects with :meth:`next_frame`.

    Thread-safe: pushes may come from any thread while another pulls frames.
    """

    def __init__(self, portrait: Portrait, controls: Controls = Controls(), seed: int = 0,
                 method: str = "rules", fps: float = VIDEO.fps, config: LiveConfig = LIVE,
                 generator_options: dict | None = None, generator=None):
        from avatar.render.warp import WarpRenderer

        self.portrait = portrait
        self.controls = controls
        self.seed = int(seed)
        self.fps = float(fps)
        self.config = config
        self.method = method
        self.samples_per_frame = round(config.audio_rate / self.fps)
        if abs(self.samples_per_frame * self.fps - config.audio_rate) > 1e-6:
            raise AvatarError(f"fps {fps:g} does not divide the live audio rate {config.audio_rate}",
                              "fps", "use 25, 30, 24, 40, 50 or 60")
        # A server passes one shared generator instance: models load once, not per session.
        self._generator = generator or get_generator(method, **(generator_options or {}))
        self._idle_generator = get_generator("rules")  # idle motion is cheap and never stalls a frame
        self._renderer = WarpRenderer(portrait.image, portrait.face)
        self._lock = threading.Lock()
        self._timeline = Timeline(self._idle_block, round(config.idle_block_seconds * self.fps),
                                  self.samples_per_frame, round(config.ramp_seconds * self.fps))
        self._ids = itertools.count(1)
        self._epoch = 0  # bumped by interrupt(): work started before it is thrown away
        self._jobs: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="avatar-live-tts", daemon=True)
        self._worker.start()
        self._stream = None  # (utterance, StreamedMouth) while audio is streamed in
        self._record: tuple[int, list[MotionFrame], list[np.ndarray]] | None = None
        self._last: tuple[int, list[MotionFrame], list[np.ndarray]] | None = None
        self._pending_events: list[tuple[str, int, str]] = []
        self.last_activity = time.monotonic()
        self.closed = False

    # -- input --------------------------------------------------------------------------
    def say(self, text: str) -> int:
        """Queue text to be spoken; returns the utterance id (spoken sentence by sentence)."""
        if not isinstance(text, str) or not text.strip():
            raise AvatarError("text is empty", "text", 'send the words to speak, e.g. "Hello there"')
        if len(text) > self.config.max_text_chars:
            raise AvatarError(f"text is longer than {self.config.max_text_chars} characters", "text",
                              "send it in several messages")
        self._check_queue()
        uid = next(self._ids)
        self._touch()
        self._jobs.put((self._epoch, uid, text))
        return uid

    def start_audio(self, sample_rate: int) -> int:
        """Begin an utterance of streamed 16-bit PCM / float audio at ``sample_rate``."""
        from avatar.live.audio_stream import StreamedMouth

        if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 96000:
            raise AvatarError(f"unsupported sample rate {sample_rate!r}", "sample_rate",
                              "send mono audio at 8000-96000 Hz")
        self._check_queue()
        with self._lock:
            if self._stream is not None:
                self._end_stream_locked()
            uid = next(self._ids)
            self._stream = (uid, StreamedMouth(sample_rate, self.fps, self.controls.arousal, self.config))
        self._touch()
        return uid

    def push_audio(self, samples: np.ndarray) -> None:
        """Mono samples (float in [-1, 1] or int16) of the current audio utterance."""
        samples = np.asarray(samples)
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768.0
        with self._lock:
            if self._stream is None:
                raise AvatarError("audio arrived before audio_start", "audio",
                                  "send {\"type\": \"audio_start\", \"sample_rate\": 16000} first")
            uid, mouth = self._stream
            if mouth.total_frames() / self.fps > self.config.max_utterance_seconds:
                raise AvatarError(f"one audio utterance is limited to {self.config.max_utterance_seconds:g} s",
                                  "audio", "send audio_end and start a new one")
            mouth.push(samples.astype(np.float32).reshape(-1))
            self._drain_stream_locked(last=False)
        self._touch()

    def end_audio(self) -> None:
        """The current audio utterance is complete."""
        with self._lock:
            if self._stream is None:
                raise AvatarError("audio_end without audio_start", "audio_end", "send audio_start first")
            self._end_stream_locked()

    def interrupt(self) -> int | None:
        """Barge-in: drop all queued speech from the next frame on; returns the utterance cut."""
        with self._lock:
            self._epoch += 1
            self._stream = None
            cut = self._timeline.clear()
            if cut is not None:
                self._pending_events.append(("interrupted", cut, ""))
            self._record = None
        while True:  # text not yet synthesised
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        self._touch()
        return cut

    def set_controls(self, controls: Controls) -> None:
        with self._lock:
            self.controls = controls
            self._timeline.restart_idle()

    # -- output -------------------------------------------------------------------------
    def next_frame(self, render: bool = True) -> LiveFrame:
        """The next frame; ``render=False`` advances the clock (audio, events) without the
        image, for a caller that is late and drops frames evenly rather than stalling."""
        with self._lock:
            emitted = self._timeline.next()
            events = self._pending_events + [(kind, uid, "") for kind, uid in emitted.events]
            self._pending_events = []
            self._keep(emitted, events)
        image = self._renderer.render(emitted.motion) if render else None
        return LiveFrame(emitted.index, image, emitted.audio, emitted.utterance, events)

    def last_utterance(self) -> tuple[MotionSeq, Audio] | None:
        """The motion and audio of the last utterance played to its end (for a download)."""
        with self._lock:
            if self._last is None:
                return None
            _, frames, audio = self._last
        motion = MotionSeq(
            fps=self.fps,
            rotation=np.stack([f.rotation for f in frames]),
            translation=np.stack([f.translation for f in frames]),
            scale=np.array([f.scale for f in frames]),
            actions=np.stack([f.actions for f in frames]),
            gaze=np.stack([f.gaze for f in frames]),
        )
        return motion, Audio(np.concatenate(audio), self.config.audio_rate)

    def queued_seconds(self) -> float:
        with self._lock:
            return self._timeline.queued_frames() / self.fps

    def close(self) -> None:
        self.closed = True
        self.interrupt()
        self._jobs.put(None)

    # -- internals ----------------------------------------------------------------------
    def _touch(self) -> None:
        self.last_activity = time.monotonic()

    def _check_queue(self) -> None:
        if self.queued_seconds() > self.config.max_queued_seconds:
            raise AvatarError(f"more than {self.config.max_queued_seconds:g} s of speech is already queued",
                              "session", "wait for it to play, or interrupt")

    def _keep(self, emitted, events) -> None:
        """Record what the viewer sees of each utterance, for last_utterance()."""
        for kind, uid, _ in events:
            if kind == "started":
                self._record = (uid, [], [])
            elif kind == "finished" and self._record is not None and self._record[0] == uid:
                self._last, self._record = self._record, None
        if self._record is not None and emitted.utterance == self._record[0]:
            if len(self._record[1]) < self.config.max_utterance_seconds * self.fps:
                self._record[1].append(emitted.motion)
                self._record[2].append(emitted.audio)

    def _idle_block(self, first: int, count: int) -> MotionSeq:
        silence = Speech(Audio(np.zeros(0, np.float32), AUDIO.sample_rate))
        seed = self.seed * 100_003 + first  # a new block of idle motion every idle_block_seconds
        motion = self._idle_generator.generate(silence, silent_features(count, self.fps),
                                               self.controls, seed=seed)
        motion.upper_body = None
        return motion

    def _drain_stream_locked(self, last: bool) -> None:
        uid, mouth = self._stream
        frames = mouth.pull()
        if not frames and not last:
            return
        names = tuple(frames[0][0]) if frames else ()
        motion = MotionSeq.neutral(len(frames), self.fps)
        for name in names:
            motion.set_action(name, [actions[name] for actions, _ in frames])
        audio = np.concatenate([a for _, a in frames]) if frames else np.zeros(0, np.float32)
        self._timeline.push(Chunk(uid, motion, audio, overlay=names or ("jawOpen",), last=last))

    def _end_stream_locked(self) -> None:
        _, mouth = self._stream
        mouth.end()
        self._drain_stream_locked(last=True)
        self._stream = None

    def _work(self) -> None:
        from avatar.audio.tts import split_text

        while (job := self._jobs.get()) is not None:
            epoch, uid, text = job
            sentences = [s for s in split_text(text) if s.strip()]
            for k, sentence in enumerate(sentences):
                if epoch != self._epoch:
                    break
                try:
                    chunk = self._speak(uid, sentence, k, last=k == len(sentences) - 1)
                except AvatarError as error:
                    with self._lock:
                        self._pending_events.append(("error", uid, str(error)))
                    chunk = Chunk(uid, MotionSeq.neutral(0, self.fps), np.zeros(0, np.float32), last=True)
                with self._lock:
                    if epoch == self._epoch:
                        self._timeline.push(chunk)
                if chunk.last:
                    break

    def _speak(self, uid: int, sentence: str, k: int, last: bool) -> Chunk:
        """One sentence: TTS -> features -> the session's generator (as avatar speak does)."""
        from avatar.audio.features import extract_features
        from avatar.audio.io import resample
        from avatar.audio.speech import cover_timeline
        from avatar.audio.tts import synthesize

        speech = synthesize(sentence)
        speech.phones = cover_timeline(speech.phones, speech.audio.duration)
        T = int(np.ceil(speech.audio.duration * self.fps))
        features = extract_features(resample(speech.audio, AUDIO.sample_rate), self.fps,
                                    num_frames=T, vad=_phone_vad(speech.phones, T, self.fps))
        motion = self._generator.generate(speech, features, self.controls, seed=self.seed + k)
        audio = np.zeros(T * self.samples_per_frame, np.float32)
        out = resample(speech.audio, self.config.audio_rate).samples[:len(audio)]
        audio[:len(out)] = out
        return Chunk(uid, motion, audio, last=last)


def _phone_vad(phones: list[Phone], num_frames: int, fps: float) -> np.ndarray:
    """Voice activity of synthesised speech from its phones (no detector needed); (T,)."""
    vad = np.zeros(num_frames, np.float32)
    for p in phones:
        if p.label != "SIL":
            vad[int(p.start * fps):int(np.ceil(p.end * fps))] = _SPEECH_VAD
    return vad
