"""Phone timings of audio without a transcript: recognise the words, then align them.

The timeline is cut into pieces: runs of words Whisper heard with confidence (cut at
pauses, at most MAX_RUN_S long) and everything else (pauses, speech Whisper did not
understand: other languages, singing, mumbling). A run's words are forced-aligned inside
its own piece (exact p/b/m times for English); every other piece gets language-independent
phone recognition, which the voice-activity gate keeps silent in pauses and music.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from avatar.audio.align import Aligner, default_aligner
from avatar.audio.asr import Recognizer, available, default_recognizer
from avatar.audio.io import resample
from avatar.audio.types import Audio, Phone, Word
from avatar.errors import AvatarError

_LOG = logging.getLogger(__name__)

PAUSE_S = 0.25  # a gap this long between heard words may end a run
RUN_PAD_S = 0.3  # a run's piece reaches this far beyond its first and last word (timing slack)
MAX_RUN_S = 20.0  # longer runs are cut at their widest pause (alignment cost grows with length)
RATE = 16000  # analysis rate of both decoders


@dataclass
class Piece:
    start: float  # seconds
    end: float
    words: list[Word] = field(default_factory=list)  # trusted words heard inside, if any


@dataclass
class Heard:
    """What was recognised in a recording."""

    phones: list[Phone]
    words: list[Word]
    transcript: str | None  # the trusted words Whisper heard, None if none
    source: str  # "speech-recognition", "phone-recognition", or both joined by "+"


def _runs(words: list[Word]) -> list[list[Word]]:
    """Consecutive words split at pauses >= PAUSE_S, then long runs at their widest pause."""
    runs: list[list[Word]] = []
    for w in words:
        if runs and w.start - runs[-1][-1].end < PAUSE_S:
            runs[-1].append(w)
        else:
            runs.append([w])
    out: list[list[Word]] = []
    while runs:
        run = runs.pop(0)
        if run[-1].end - run[0].start <= MAX_RUN_S or len(run) < 2:
            out.append(run)
            continue
        gaps = [b.start - a.end for a, b in zip(run, run[1:])]
        k = 1 + max(range(len(gaps)), key=gaps.__getitem__)
        runs[:0] = [run[:k], run[k:]]
    return out


def pieces(words: list[Word], duration: float) -> list[Piece]:
    """Partition [0, duration] into word runs (padded) and the stretches between them."""
    out: list[Piece] = []
    cursor = 0.0
    runs = _runs(words)
    for i, run in enumerate(runs):
        start = max(run[0].start - RUN_PAD_S, cursor)
        end = min(run[-1].end + RUN_PAD_S, duration)
        if i + 1 < len(runs) and end > runs[i + 1][0].start - RUN_PAD_S:  # pads overlap
            end = max(0.5 * (run[-1].end + runs[i + 1][0].start), start)
        if start > cursor:
            out.append(Piece(cursor, start))
        if end > start:
            out.append(Piece(start, end, run))
        cursor = max(cursor, end)
    if cursor < duration:
        out.append(Piece(cursor, duration))
    return out


def listen(audio: Audio, aligner: Aligner | None = None,
           recognizer: Recognizer | None = None) -> Heard:
    """Phones (and words where understood) of speech in ``audio``, without a transcript."""
    aligner = aligner or default_aligner()
    audio16 = resample(audio, RATE)
    if recognizer is None:
        if not available():
            _LOG.warning("speech recognition (faster-whisper) is not installed: recognising "
                         "phones only, lips will close on fewer p/b/m")
            return Heard(aligner.recognize(audio16), [], None, "phone-recognition")
        recognizer = default_recognizer()
    segments = recognizer.transcribe(audio16)
    trusted = [w for s in segments if s.trusted for w in s.words]
    phones: list[Phone] = []
    timed: list[Word] = []
    sources: set[str] = set()
    for piece in pieces(trusted, audio16.duration):
        a, b = round(piece.start * RATE), round(piece.end * RATE)
        chunk = Audio(audio16.samples[a:b], RATE)
        if chunk.duration <= 0:
            continue
        got = None
        if piece.words:
            try:
                got = aligner.align(chunk, " ".join(w.text for w in piece.words))
                sources.add("speech-recognition")
            except AvatarError as error:  # heard words that do not fit the audio
                _LOG.debug("%.2f-%.2f s: %s; recognising phones", piece.start, piece.end, error.what)
        if got is None:
            got = (aligner.recognize(chunk), [])
            if any(p.label != "SIL" for p in got[0]):
                sources.add("phone-recognition")
        phones += [Phone(p.label, p.start + piece.start, p.end + piece.start) for p in got[0]]
        timed += [Word(w.text, w.start + piece.start, w.end + piece.start) for w in got[1]]
    transcript = " ".join(w.text for w in trusted) or None
    source = "+".join(s for s in ("speech-recognition", "phone-recognition") if s in sources)
    return Heard(phones, timed, transcript, source or "none")
