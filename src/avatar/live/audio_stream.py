"""Mouth motion from audio that arrives in pieces (a voice agent's TTS, a microphone).

Frame n is decided once the audio reaches the end of frame n + lookahead: its mouth comes
from the rules generator's audio-only mouth (loudness -> jaw, spectrum -> spread/round,
gated by voice activity; avatar.generators.lips) on the last ``context`` seconds. Every
decision uses a window fixed relative to its frame and the resamplers and the VAD are
stateful streams, so the motion depends on the audio alone, never on how it was chunked.
"""

from __future__ import annotations

import numpy as np
import soxr

from avatar.audio.features import extract_features
from avatar.audio.types import Audio
from avatar.audio.vad import VAD_SAMPLE_RATE, StreamingVad
from avatar.config import AUDIO, LIVE, LiveConfig
from avatar.generators.lips import mouth_motion


class _Resampler:
    """soxr's streaming resampler, or nothing when the rates already match."""

    def __init__(self, rate_in: int, rate_out: int):
        self._stream = None if rate_in == rate_out else soxr.ResampleStream(
            rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)


class StreamedMouth:
    """Push samples at ``sample_rate``; pull frames of (mouth actions, output audio)."""

    def __init__(self, sample_rate: int, fps: float, arousal: float = 0.0, config: LiveConfig = LIVE):
        self.fps = float(fps)
        self.arousal = arousal
        self._lookahead = config.stream_lookahead_frames
        self._context = max(2, round(config.stream_context_seconds * fps))  # frames per window
        self._to16 = _Resampler(sample_rate, AUDIO.sample_rate)
        self._to_out = _Resampler(sample_rate, config.audio_rate)
        self._spf16 = AUDIO.sample_rate / self.fps  # analysis samples per frame
        self._spf_out = round(config.audio_rate / self.fps)
        self._a16 = np.zeros(0, np.float32)
        self._out = np.zeros(0, np.float32)
        self._vad = StreamingVad() if AUDIO.sample_rate == VAD_SAMPLE_RATE else None
        self.decided = 0  # frames handed out so far
        self.ended = False

    def push(self, samples: np.ndarray) -> None:
        samples = np.nan_to_num(np.asarray(samples, np.float32)).clip(-1.0, 1.0)
        self._feed(self._to16(samples), self._to_out(samples))

    def end(self) -> None:
        """No more audio: the last frames are decided against silence."""
        empty = np.zeros(0, np.float32)
        self._feed(self._to16(empty, last=True), self._to_out(empty, last=True))
        self.ended = True

    def _feed(self, a16: np.ndarray, out: np.ndarray) -> None:
        self._a16 = np.concatenate([self._a16, a16])
        self._out = np.concatenate([self._out, out])
        if self._vad is not None:
            self._vad.push(a16)

    def total_frames(self) -> int:
        return int(np.ceil(len(self._a16) / self._spf16))

    def pull(self) -> list[tuple[dict[str, float], np.ndarray]]:
        """Every frame that can be decided now: ({action: value}, (samples_per_frame,) audio)."""
        frames = []
        while True:
            n = self.decided
            need = n + 1 + self._lookahead
            if not self.ended and (len(self._a16) < need * self._spf16
                                   or len(self._out) < (n + 1) * self._spf_out):
                break
            if self.ended and n >= self.total_frames():
                break
            frames.append((self._mouth(n), self._audio(n)))
            self.decided += 1
        return frames

    def _mouth(self, n: int) -> dict[str, float]:
        end = n + 1 + self._lookahead
        first = max(0, end - self._context)
        lo, hi = round(first * self._spf16), round(end * self._spf16)
        window = np.zeros(hi - lo, np.float32)
        have = self._a16[lo:hi]
        window[:len(have)] = have  # past the end of the speech: silence
        count = end - first
        vad = self._vad.frames(self.fps, first, count) if self._vad is not None else None
        features = extract_features(Audio(window, AUDIO.sample_rate), self.fps, num_frames=count, vad=vad)
        curves = mouth_motion(None, features, self.arousal)  # {name: (count,)}
        return {name: float(curve[n - first]) for name, curve in curves.items()}

    def _audio(self, n: int) -> np.ndarray:
        piece = np.zeros(self._spf_out, np.float32)
        have = self._out[n * self._spf_out:(n + 1) * self._spf_out]
        piece[:len(have)] = have
        return piece
