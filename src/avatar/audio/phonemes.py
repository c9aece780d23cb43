"""IPA (espeak-ng's English phonemes) to ARPAbet, and grapheme-to-phoneme via espeak-ng.

espeak-ng, as used by piper, spells a sentence as a sequence of IPA code points: stress
marks precede a vowel, length marks and diacritics follow one, diphthongs and affricates
take two code points, words are separated by spaces and clauses end in punctuation.
:func:`parse_ipa` groups such a token sequence into ARPAbet phones while keeping track of
which tokens each phone owns, so per-token durations (piper alignments) become phone times.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from avatar.audio.types import Phone

_LOG = logging.getLogger(__name__)

SILENCE = "SIL"
WORD_BREAK = " "
ESPEAK_VOICE = "en-us"

_WORD_PATTERN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # letters/digits, inner apostrophes
_STRESS = frozenset("ˈˌ")  # belong to the following vowel
_MODIFIERS = frozenset("ːˑʲʰʷ˞ʼ")  # belong to the preceding phone
_SILENT = frozenset("^$_.,;:!?¡¿—–…\"«»()[]-'")  # piper BOS/EOS/PAD and punctuation

_IPA_PAIRS: dict[tuple[str, str], str] = {
    ("t", "ʃ"): "CH",
    ("d", "ʒ"): "JH",
    ("a", "ɪ"): "AY",
    ("a", "ʊ"): "AW",
    ("e", "ɪ"): "EY",
    ("o", "ʊ"): "OW",
    ("ə", "ʊ"): "OW",
    ("ɔ", "ɪ"): "OY",
    ("e", "ə"): "EH",
    ("ɪ", "ə"): "IH",
    ("ʊ", "ə"): "UH",
}

_IPA_SINGLE: dict[str, str] = {
    # vowels
    "ə": "AH",
    "ʌ": "AH",
    "ɐ": "AH",
    "ɚ": "ER",
    "ɜ": "ER",
    "ɝ": "ER",
    "ɪ": "IH",
    "ᵻ": "IH",
    "ɨ": "IH",
    "i": "IY",
    "y": "IY",
    "ɛ": "EH",
    "e": "EH",
    "æ": "AE",
    "a": "AA",
    "ɑ": "AA",
    "ɒ": "AA",
    "ɔ": "AO",
    "o": "OW",
    "ʊ": "UH",
    "u": "UW",
    "ʉ": "UW",
    # consonants
    "p": "P",
    "b": "B",
    "t": "T",
    "d": "D",
    "k": "K",
    "ɡ": "G",
    "g": "G",
    "f": "F",
    "v": "V",
    "θ": "TH",
    "ð": "DH",
    "s": "S",
    "z": "Z",
    "ʃ": "SH",
    "ʒ": "ZH",
    "h": "HH",
    "x": "HH",
    "ç": "HH",
    "ɣ": "G",
    "m": "M",
    "n": "N",
    "ŋ": "NG",
    "ɲ": "N",
    "l": "L",
    "ɫ": "L",
    "ɬ": "L",
    "ɹ": "R",
    "r": "R",
    "ɾ": "D",
    "w": "W",
    "ʍ": "W",
    "j": "Y",
    "ʔ": "T",
}


@dataclass(frozen=True)
class IpaUnit:
    """One ARPAbet phone (or SILENCE / WORD_BREAK) owning tokens ``[first, last)``."""

    label: str
    first: int
    last: int


def parse_ipa(tokens: Sequence[str]) -> list[IpaUnit]:
    """Group IPA code points into ARPAbet units; every token is owned by exactly one unit."""
    units: list[IpaUnit] = []
    pending_start: int | None = None  # start of stress marks waiting for their vowel
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _STRESS:
            pending_start = i if pending_start is None else pending_start
            i += 1
            continue
        label, width = _match(tokens, i)
        if label is None:  # length mark, diacritic or unknown symbol: extend the previous unit
            if units and pending_start is None:
                units[-1] = IpaUnit(units[-1].label, units[-1].first, i + 1)
            else:
                pending_start = i if pending_start is None else pending_start
            i += 1
            continue
        first = i if pending_start is None else pending_start
        units.append(IpaUnit(label, first, i + width))
        pending_start = None
        i += width
    if pending_start is not None and units:  # trailing stress marks
        units[-1] = IpaUnit(units[-1].label, units[-1].first, len(tokens))
    return units


def _match(tokens: Sequence[str], i: int) -> tuple[str | None, int]:
    """ARPAbet label starting at token ``i`` and how many tokens it spans (None: modifier)."""
    token = tokens[i]
    if token == WORD_BREAK:
        return WORD_BREAK, 1
    if token in _SILENT:
        return SILENCE, 1
    if i + 1 < len(tokens) and (token, tokens[i + 1]) in _IPA_PAIRS:
        return _IPA_PAIRS[(token, tokens[i + 1])], 2
    if token in _MODIFIERS or unicodedata.combining(token):
        return None, 1
    label = _IPA_SINGLE.get(token)
    if label is None:
        _LOG.debug("unknown IPA symbol %r merged into its neighbour", token)
    return label, 1


def ipa_to_arpabet(ipa: str) -> list[str]:
    """ARPAbet phones of an IPA string, silences and word breaks dropped."""
    tokens = list(unicodedata.normalize("NFD", ipa))
    return [u.label for u in parse_ipa(tokens) if u.label not in (SILENCE, WORD_BREAK)]


def grapheme_to_arpabet(word: str) -> list[str]:
    """Pronounce a word with espeak-ng (piper's bundled copy); [] if that is unavailable."""
    phonemizer = _espeak_phonemizer()
    if phonemizer is None:
        return []
    sentences = phonemizer.phonemize(ESPEAK_VOICE, word)
    return ipa_to_arpabet("".join("".join(sentence) for sentence in sentences))


@functools.lru_cache(maxsize=1)
def _espeak_phonemizer():
    """piper's espeak-ng phonemizer, created on first use (None if piper is missing)."""
    try:
        from piper.phonemize_espeak import EspeakPhonemizer
    except ImportError:
        _LOG.warning("piper is not installed: unknown words cannot be pronounced")
        return None
    return EspeakPhonemizer()


def text_words(text: str) -> list[str]:
    """The words of ``text`` as written (punctuation dropped)."""
    return _WORD_PATTERN.findall(text)


def merge_silences(phones: Sequence[Phone]) -> list[Phone]:
    """Merge runs of consecutive SIL phones and drop zero-length phones."""
    merged: list[Phone] = []
    for phone in phones:
        if phone.end <= phone.start:
            continue
        if merged and phone.label == SILENCE and merged[-1].label == SILENCE:
            merged[-1] = Phone(SILENCE, merged[-1].start, phone.end)
        else:
            merged.append(phone)
    return merged
