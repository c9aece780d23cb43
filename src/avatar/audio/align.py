"""Phone timings from audio with pocketsphinx: forced alignment and phone recognition."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence

import numpy as np

from avatar.audio.io import resample, to_pcm16
from avatar.audio.phonemes import SILENCE, grapheme_to_arpabet, text_words
from avatar.audio.types import Audio, Phone, Word
from avatar.audio.vad import SPEECH_THRESHOLD, voice_activity
from avatar.errors import AvatarError

_LOG = logging.getLogger(__name__)

DECODER_RATE = 16000  # the en-us acoustic model's sample rate
FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate (-frate)
# Forced alignment keeps (almost) every hypothesis alive: the word sequence is fixed, so
# there is nothing to prune, and narrow beams lose the path on fast or noisy speech.
_WIDE_BEAM = 1e-200
_PRONUNCIATION_VARIANT = re.compile(r"\(\d+\)$")  # "the(2)" -> "the"
_STRESS_DIGITS = re.compile(r"\d")

MAX_ALIGN_SECONDS = 30.0  # longer audio is aligned in chunks cut at pauses
MIN_PAUSE_SECONDS = 0.3  # shorter gaps between speech stretches are bridged
SEGMENT_PAD_SECONDS = 0.1  # context kept around each speech stretch for recognition

_NO_WORDS_HINT = "the transcript must contain words (letters or digits) that are spoken in the audio"


class Aligner:
    """Reusable pocketsphinx decoders (building one takes ~1 s, so keep this object)."""

    def __init__(self) -> None:
        self._align_decoder = None
        self._phone_decoder = None

    # --- decoders ---

    def _aligner(self):
        """The forced-alignment decoder, created on first use."""
        if self._align_decoder is None:
            from pocketsphinx import Decoder

            self._align_decoder = Decoder(
                beam=_WIDE_BEAM,
                pbeam=_WIDE_BEAM,
                wbeam=_WIDE_BEAM,
                lpbeam=_WIDE_BEAM,
                bestpath=False,
                loglevel="FATAL",
            )
        return self._align_decoder

    def _recognizer(self):
        """The phone-loop (allphone) decoder, created on first use."""
        if self._phone_decoder is None:
            from pocketsphinx import Decoder, get_model_path

            self._phone_decoder = Decoder(
                allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                backtrace=False,
                loglevel="FATAL",
            )
        return self._phone_decoder

    # --- forced alignment ---

    def align(self, audio: Audio, transcript: str) -> tuple[list[Phone], list[Word]]:
        """Phone and word times of ``transcript`` spoken in ``audio`` (forced alignment).

        Words missing from the dictionary are pronounced by espeak-ng (or dropped).
        Audio longer than MAX_ALIGN_SECONDS is aligned in chunks cut at pauses.
        Raises AvatarError if the transcript has no usable words or cannot be aligned.
        """
        written = self._dictionary_words(transcript)
        if not written:
            raise AvatarError("the transcript has no words", "--transcript", hint=_NO_WORDS_HINT)
        audio16 = resample(audio, DECODER_RATE)
        phones: list[Phone] = []
        words: list[Word] = []
        for (start, end), chunk_words in _split_for_alignment(audio16, written):
            chunk = Audio(audio16.samples[start:end], DECODER_RATE)
            chunk_phones, chunk_words_timed = self._align_chunk(chunk, chunk_words)
            offset = start / DECODER_RATE
            phones.extend(_shift_phone(p, offset) for p in chunk_phones)
            words.extend(Word(w.text, w.start + offset, w.end + offset) for w in chunk_words_timed)
        return phones, words

    def _dictionary_words(self, transcript: str) -> list[str]:
        """Lower-case transcript words, each known to (or added to) the decoder's dictionary."""
        decoder = self._aligner()
        known = []
        for word in (w.lower().replace("’", "'") for w in text_words(transcript)):
            if decoder.lookup_word(word) is None:
                pronunciation = grapheme_to_arpabet(word)
                if not pronunciation:
                    _LOG.warning("cannot pronounce %r: left out of the alignment", word)
                    continue
                decoder.add_word(word, " ".join(pronunciation), True)
            known.append(word)
        return known

    def _align_chunk(self, chunk: Audio, words: Sequence[str]) -> tuple[list[Phone], list[Word]]:
        """Two-pass forced alignment of one chunk (word pass, then phone/state pass)."""
        if not words:  # nothing said here
            return [Phone(SILENCE, 0.0, chunk.duration)], []
        decoder = self._aligner()
        pcm = to_pcm16(chunk.samples)  # what pocketsphinx reads
        try:
            decoder.set_align_text(" ".join(words))
            _decode(decoder, pcm)
            decoder.set_alignment()  # fails if the word pass found no path
            _decode(decoder, pcm)
            alignment = decoder.get_alignment()
        except RuntimeError as error:
            alignment = None
            _LOG.debug("pocketsphinx alignment failed: %s", error)
        if alignment is None:
            raise AvatarError(
                "the transcript could not be aligned to the audio",
                "--transcript",
                hint="check that the transcript matches what is said",
            )
        return _read_alignment(alignment)

    # --- phone recognition ---

    def recognize(self, audio: Audio) -> list[Phone]:
        """Phones heard in ``audio`` without a transcript; SIL wherever there is no voice.

        Only stretches that the VAD marks as speech are decoded, so silence, music and
        noise yield SIL instead of spurious phones.
        """
        audio16 = resample(audio, DECODER_RATE)
        decoder = self._recognizer()
        phones: list[Phone] = []
        for start, end in speech_segments(audio16):
            pcm = to_pcm16(audio16.samples[start:end])
            _decode(decoder, pcm)
            offset = start / DECODER_RATE
            phones.extend(
                Phone(
                    normalise_label(seg.word),
                    offset + seg.start_frame / FRAMES_PER_SECOND,
                    offset + (seg.end_frame + 1) / FRAMES_PER_SECOND,
                )
                for seg in decoder.seg()
            )
        return phones


@functools.lru_cache(maxsize=1)
def default_aligner() -> Aligner:
    """A process-wide :class:`Aligner` (its decoders are built lazily on first use)."""
    return Aligner()


def normalise_label(name: str) -> str:
    """pocketsphinx phone/filler name -> ARPAbet without stress, or SIL for any filler."""
    name = name.upper()
    if name.startswith("+") or name.startswith("<") or name in ("SIL", ""):
        return SILENCE
    return _STRESS_DIGITS.sub("", name)


def speech_segments(audio16: Audio) -> list[tuple[int, int]]:
    """Sample ranges of voice activity (pauses < MIN_PAUSE_SECONDS bridged, padded)."""
    vad = voice_activity(audio16, FRAMES_PER_SECOND)  # (T,) at 100 fps
    active = vad > SPEECH_THRESHOLD
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2]))  # [start, end) frames
    pad = round(SEGMENT_PAD_SECONDS * FRAMES_PER_SECOND)
    min_gap = round(MIN_PAUSE_SECONDS * FRAMES_PER_SECOND)
    merged: list[list[int]] = []
    for start, end in runs:
        start, end = max(0, start - pad), min(len(active), end + pad)
        if merged and start - merged[-1][1] < min_gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    per_frame = audio16.sample_rate // FRAMES_PER_SECOND
    total = len(audio16.samples)
    return [(s * per_frame, min(total, e * per_frame)) for s, e in merged if s * per_frame < total]


def _split_for_alignment(audio16: Audio, words: Sequence[str]) -> list[tuple[tuple[int, int], list[str]]]:
    """Cut long audio at pauses into chunks and share the words out by speaking time.

    Words go to chunks in proportion to each chunk's voiced time (counted in letters, a
    proxy for word duration). Short audio is a single chunk with all words.
    """
    total = len(audio16.samples)
    if audio16.duration <= MAX_ALIGN_SECONDS:
        return [((0, total), list(words))]
    segments = speech_segments(audio16)
    if len(segments) < 2:
        return [((0, total), list(words))]
    chunks = _group_segments(segments, round(MAX_ALIGN_SECONDS * audio16.sample_rate), total)
    voiced = np.array([sum(e - s for s, e in segments if lo <= s < hi) for lo, hi in chunks], float)
    letters = np.cumsum([len(w) for w in words])  # (W,)
    bounds = np.cumsum(voiced) / voiced.sum() * letters[-1]  # letters spoken by each chunk's end
    word_chunk = np.minimum(np.searchsorted(bounds, letters - 0.5), len(chunks) - 1)
    return [(chunk, [w for w, c in zip(words, word_chunk) if c == k]) for k, chunk in enumerate(chunks)]


def _group_segments(segments: Sequence[tuple[int, int]], max_len: int, total: int) -> list[tuple[int, int]]:
    """Contiguous chunks covering [0, total), each cut in the middle of a pause."""
    cuts = [0]
    for (_, prev_end), (next_start, _) in zip(segments, segments[1:]):
        middle = (prev_end + next_start) // 2
        if next_start - cuts[-1] > max_len and middle > cuts[-1]:
            cuts.append(middle)
    cuts.append(total)
    return list(zip(cuts[:-1], cuts[1:]))


def _read_alignment(alignment) -> tuple[list[Phone], list[Word]]:
    """pocketsphinx alignment (words containing phones, in frames) -> seconds."""
    phones: list[Phone] = []
    words: list[Word] = []
    for word in alignment:
        name = _PRONUNCIATION_VARIANT.sub("", word.name)
        if normalise_label(name) != SILENCE:
            start = word.start / FRAMES_PER_SECOND
            words.append(Word(name, start, start + word.duration / FRAMES_PER_SECOND))
        for phone in word:
            start = phone.start / FRAMES_PER_SECOND
            phones.append(
                Phone(normalise_label(phone.name), start, start + phone.duration / FRAMES_PER_SECOND)
            )
    return phones, words


def _decode(decoder, pcm: bytes) -> None:
    """Run one whole utterance through ``decoder``."""
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _shift_phone(phone: Phone, offset: float) -> Phone:
    """The same phone ``offset`` seconds later."""
    return Phone(phone.label, phone.start + offset, phone.end + offset)
