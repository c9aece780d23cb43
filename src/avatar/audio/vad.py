"""Voice activity per video frame: silero-vad (ONNX) with an energy-based fallback."""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
from pathlib import Path

import numpy as np

from avatar.audio.io import resample
from avatar.audio.types import Audio

_LOG = logging.getLogger(__name__)

VAD_SAMPLE_RATE = 16000  # silero-vad's native rate
SPEECH_THRESHOLD = 0.5  # probability above which a frame counts as speech
_WINDOW = 512  # samples per silero step at 16 kHz (32 ms)
_CONTEXT = 64  # samples of the previous window silero prepends at 16 kHz
_STATE_SIZE = 128  # silero's recurrent state width: state is (2, batch, 128)
_STREAM_SECONDS = 20.0  # long audio is cut into streams of this length, run as one batch
_MODEL_FILE = "silero_vad.onnx"

# Energy fallback: frames this many dB under the loud (95th percentile) level count as silence.
_FALLBACK_RANGE_DB = 25.0
_FALLBACK_SLOPE_DB = 3.0  # softness of the logistic around the threshold
STREAM_FALLBACK_DB = -45.0  # streamed audio has no loud level yet: a fixed threshold
_LOUD_PERCENTILE = 95
_MIN_POWER = 1e-10  # -100 dBFS floor, avoids log(0)


def voice_activity(audio: Audio, fps: float, num_frames: int | None = None) -> np.ndarray:
    """Probability that each video frame is speech; (T,) float32 in [0, 1].

    Frame ``i`` covers ``[i / fps, (i + 1) / fps)``; T = ``num_frames`` or
    ``ceil(duration * fps)``. Uses silero-vad when installed, else an energy detector.
    """
    if num_frames is None:
        num_frames = math.ceil(audio.duration * fps)
    audio16 = resample(audio, VAD_SAMPLE_RATE)
    session = _silero_session()
    if session is None:
        step_probs = _energy_probabilities(audio16.samples)
    else:
        step_probs = _silero_probabilities(session, audio16.samples)
    return _steps_to_frames(step_probs, _WINDOW / VAD_SAMPLE_RATE, fps, num_frames)


def silero_available() -> bool:
    """True if the silero-vad ONNX model can be used (else the energy fallback runs)."""
    return _silero_session() is not None


def _silero_model_path() -> Path | None:
    """Path of silero-vad's ONNX file, found without importing the package (it imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _MODEL_FILE
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def _silero_session():
    """The cached onnxruntime session for silero-vad, or None if it is not installed."""
    path = _silero_model_path()
    if path is None:
        _LOG.warning("silero-vad is not installed: using the energy-based voice detector")
        return None
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1  # tiny model: threading costs more than it gains
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _silero_probabilities(session, samples: np.ndarray) -> np.ndarray:
    """Speech probability per 32 ms window of 16 kHz ``samples``; (S,) float32.

    The signal is cut into a few long streams processed side by side as one batch (each
    with its own recurrent state), so an hour of audio needs ~thousands of calls, not 10^5.
    """
    num_steps = math.ceil(len(samples) / _WINDOW)
    if num_steps == 0:
        return np.zeros(0, dtype=np.float32)
    steps_per_stream = max(1, int(_STREAM_SECONDS * VAD_SAMPLE_RATE / _WINDOW))
    num_streams = math.ceil(num_steps / steps_per_stream)
    padded = np.zeros(num_streams * steps_per_stream * _WINDOW, dtype=np.float32)
    padded[: len(samples)] = samples
    streams = padded.reshape(num_streams, steps_per_stream, _WINDOW)  # (B, S, 512)
    probs = np.zeros((num_streams, steps_per_stream), dtype=np.float32)  # (B, S)
    state = np.zeros((2, num_streams, _STATE_SIZE), dtype=np.float32)
    context = np.zeros((num_streams, _CONTEXT), dtype=np.float32)
    rate = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
    for step in range(steps_per_stream):
        window = np.concatenate([context, streams[:, step]], axis=1)  # (B, 576)
        output, state = session.run(None, {"input": window, "state": state, "sr": rate})
        probs[:, step] = output[:, 0]
        context = window[:, -_CONTEXT:]
    return probs.reshape(-1)[:num_steps]


def _energy_probabilities(samples: np.ndarray) -> np.ndarray:
    """Fallback speech probability per 32 ms window from loudness alone; (S,) float32.

    Much weaker than silero (music and steady noise pass as speech when loud enough).
    """
    num_steps = math.ceil(len(samples) / _WINDOW)
    if num_steps == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.zeros(num_steps * _WINDOW, dtype=np.float32)
    padded[: len(samples)] = samples
    power = np.mean(padded.reshape(num_steps, _WINDOW) ** 2, axis=1)  # (S,)
    db = 10.0 * np.log10(power + _MIN_POWER)
    threshold = np.percentile(db, _LOUD_PERCENTILE) - _FALLBACK_RANGE_DB
    probs = 1.0 / (1.0 + np.exp(-(db - threshold) / _FALLBACK_SLOPE_DB))
    return probs.astype(np.float32)


def _steps_to_frames(step_probs: np.ndarray, step_seconds: float, fps: float, num_frames: int) -> np.ndarray:
    """Average fixed-step probabilities over each video frame's time span; (T,) float32."""
    if num_frames == 0 or len(step_probs) == 0:
        return np.zeros(num_frames, dtype=np.float32)
    # Cumulative integral of the step function, sampled at frame edges: exact span averages.
    edges = np.arange(num_frames + 1) / fps  # (T + 1,)
    step_edges = np.arange(len(step_probs) + 1) * step_seconds
    integral = np.concatenate([[0.0], np.cumsum(step_probs * step_seconds)])
    # Beyond the audio the integral stays flat, so trailing frames read as silence.
    at_edges = np.interp(edges, step_edges, integral)
    return (np.diff(at_edges) * fps).clip(0.0, 1.0).astype(np.float32)


class StreamingVad:
    """Speech probability of 16 kHz audio that arrives in pieces, one 32 ms step at a time.

    The same recurrent model as :func:`voice_activity`, its state carried between steps, so
    the probabilities depend on the audio only, not on how it was cut into pieces.
    """

    def __init__(self):
        self._session = _silero_session()
        self._state = np.zeros((2, 1, _STATE_SIZE), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._rate = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
        self.probs: list[float] = []  # one per completed step
        self.step_seconds = _WINDOW / VAD_SAMPLE_RATE

    def push(self, samples16: np.ndarray) -> None:
        self._pending = np.concatenate([self._pending, np.asarray(samples16, np.float32)])
        while len(self._pending) >= _WINDOW:
            step, self._pending = self._pending[:_WINDOW], self._pending[_WINDOW:]
            self.probs.append(self._step(step))

    def _step(self, step: np.ndarray) -> float:
        if self._session is None:  # the energy fallback, against a fixed level (no look-ahead)
            db = 10.0 * np.log10(np.mean(step ** 2) + _MIN_POWER)
            return float(1.0 / (1.0 + np.exp(-(db - STREAM_FALLBACK_DB) / _FALLBACK_SLOPE_DB)))
        window = np.concatenate([self._context, step[None]], axis=1)  # (1, 576)
        output, self._state = self._session.run(
            None, {"input": window, "state": self._state, "sr": self._rate})
        self._context = window[:, -_CONTEXT:]
        return float(output[0, 0])

    def frames(self, fps: float, first: int, count: int) -> np.ndarray:
        """Per-video-frame probabilities of frames [first, first + count); (count,) float32."""
        return _steps_to_frames(np.asarray(self.probs, np.float32), self.step_seconds, fps,
                                first + count)[first:]
