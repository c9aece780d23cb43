"""TTS, forced alignment, phone recognition and the load_speech entry point."""

from __future__ import annotations

import difflib
import math

import numpy as np
import pytest

from avatar.audio.align import Aligner
from avatar.audio.io import resample, save_wav
from avatar.audio.phonemes import SILENCE, ipa_to_arpabet, text_words
from avatar.audio.speech import cover_timeline, load_speech
from avatar.audio.tts import synthesize
from avatar.audio.types import Audio, Phone, Speech
from avatar.config import AUDIO
from avatar.errors import AvatarError

SENTENCE = "My mother makes marvelous lemon muffins every Monday morning, and we eat them by the sea."
M_WORDS = ("my", "mother", "makes", "marvelous", "muffins", "monday", "morning")
ARPABET = set(
    [
        "AA",
        "AE",
        "AH",
        "AO",
        "AW",
        "AY",
        "B",
        "CH",
        "D",
        "DH",
        "EH",
        "ER",
        "EY",
        "F",
        "G",
        "HH",
        "IH",
        "IY",
        "JH",
        "K",
        "L",
        "M",
        "N",
        "NG",
        "OW",
        "OY",
        "P",
        "R",
        "S",
        "SH",
        "T",
        "TH",
        "UH",
        "UW",
        "V",
        "W",
        "Y",
        "Z",
        "ZH",
        "SIL",
    ]
)
FPS = 25.0
BOUNDARY_TOLERANCE = 0.05  # s: median disagreement allowed between TTS and aligner
RATE = AUDIO.sample_rate


@pytest.fixture(scope="module")
def speech() -> Speech:
    return synthesize(SENTENCE)


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return Aligner()


@pytest.fixture(scope="module")
def speech_wav(speech, tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    save_wav(speech.audio, path)
    return path


def assert_covering(phones: list[Phone], duration: float) -> None:
    """Phones are sorted, contiguous and cover [0, duration]."""
    assert phones[0].start == pytest.approx(0.0, abs=1e-6)
    assert phones[-1].end == pytest.approx(duration, abs=0.02)
    for before, after in zip(phones, phones[1:]):
        assert before.end == pytest.approx(after.start, abs=1e-6)
        assert after.end > after.start


def speech_phones(phones: list[Phone]) -> list[Phone]:
    return [p for p in phones if p.label != SILENCE]


def m_words(speech_or_words) -> list:
    return [w for w in speech_or_words if w.text.lower() in M_WORDS]


# --- TTS -----------------------------------------------------------------------------------


def test_tts_gives_exact_arpabet_phones(speech):
    assert speech.phones_source == "tts" and speech.transcript == SENTENCE
    assert speech.audio.duration > 3.0
    assert {p.label for p in speech.phones} <= ARPABET
    assert_covering(speech.phones, speech.audio.duration)
    assert [w.text for w in speech.words] == text_words(SENTENCE)


def test_tts_m_phones_start_their_words(speech):
    m_phones = [p for p in speech.phones if p.label == "M"]
    assert len(m_phones) >= len(M_WORDS) + 2  # + lemon, them
    for word in m_words(speech.words):
        first = min((p for p in speech.phones if p.start >= word.start - 1e-6), key=lambda p: p.start)
        assert first.label == "M", word


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_rejected(text):
    with pytest.raises(AvatarError, match="text is empty") as error:
        synthesize(text)
    assert "--text" in str(error.value)


def test_long_text_is_spoken_sentence_by_sentence():
    text = " ".join(["The cat sat on the mat.", "Then it slept!", "Did it dream?"] * 3)
    long = synthesize(text)
    assert_covering(long.phones, long.audio.duration)
    assert len(long.words) == len(text_words(text))
    assert long.audio.duration > 6.0


def test_espeak_engine():
    spoken = synthesize("Make more money.", engine="espeak")
    assert spoken.phones_source == "tts"
    assert [p.label for p in speech_phones(spoken.phones)][:2] == ["M", "EY"]
    assert [w.text for w in spoken.words] == ["Make", "more", "money"]


def test_auto_engine_falls_back_to_espeak(monkeypatch):
    import avatar.audio.tts as tts

    def broken(text):
        raise RuntimeError("voice model missing")

    monkeypatch.setattr(tts, "_synthesize_piper", broken)
    spoken = synthesize("Make more money.")
    assert [w.text for w in spoken.words] == ["Make", "more", "money"]
    with pytest.raises(AvatarError, match="piper"):
        synthesize("Make more money.", engine="piper")


def test_unknown_engine():
    with pytest.raises(AvatarError, match="unknown TTS engine"):
        synthesize("Hello.", engine="festival")


def test_ipa_mapping():
    assert ipa_to_arpabet("mˈʌðɚ") == ["M", "AH", "DH", "ER"]
    assert ipa_to_arpabet("tʃˈiːz dʒˈɔɪ") == ["CH", "IY", "Z", "JH", "OY"]


# --- alignment -----------------------------------------------------------------------------


def test_forced_alignment_agrees_with_tts(speech, aligner):
    phones, words = aligner.align(resample(speech.audio, RATE), SENTENCE)
    tts_phones, fa_phones = speech_phones(speech.phones), speech_phones(phones)
    matcher = difflib.SequenceMatcher(a=[p.label for p in tts_phones], b=[p.label for p in fa_phones])
    pairs = [
        (tts_phones[block.a + k], fa_phones[block.b + k])
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    assert len(pairs) >= 0.8 * len(tts_phones)
    errors = [abs(t.start - f.start) for t, f in pairs]
    assert np.median(errors) < BOUNDARY_TOLERANCE
    assert [w.text for w in words] == [w.lower() for w in text_words(SENTENCE)]


def test_forced_alignment_finds_m_where_expected(speech, aligner):
    phones, _ = aligner.align(speech.audio, SENTENCE)
    aligned_m = [p for p in phones if p.label == "M"]
    for expected in (p for p in speech.phones if p.label == "M"):
        middle = (expected.start + expected.end) / 2
        assert any(abs((p.start + p.end) / 2 - middle) < BOUNDARY_TOLERANCE * 2 for p in aligned_m), expected


def test_unknown_words_are_pronounced(speech, aligner):
    text = SENTENCE.replace("lemon", "zorblaxian")
    _, words = aligner.align(speech.audio, text)
    assert "zorblaxian" in [w.text for w in words]


def test_recognition_hears_speech_and_ignores_non_speech(speech, aligner):
    heard = aligner.recognize(speech.audio)
    assert len(speech_phones(heard)) > 0.5 * len(speech_phones(speech.phones))
    assert {p.label for p in heard} <= ARPABET
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    for noise in (
        0.3 * rng.standard_normal(len(t)),
        sum(0.2 * np.sin(2 * np.pi * f * t) for f in (262, 330, 392)),
    ):
        assert speech_phones(aligner.recognize(Audio(noise.astype(np.float32), RATE))) == []


# --- load_speech ---------------------------------------------------------------------------


def test_load_speech_from_text():
    spoken, features = load_speech(text="Hello there, my friend.", fps=FPS)
    assert spoken.phones_source == "tts"
    assert features.num_frames == math.ceil(spoken.audio.duration * FPS)
    assert_covering(spoken.phones, spoken.audio.duration)


def test_load_speech_with_transcript(speech_wav):
    spoken, features = load_speech(audio_path=speech_wav, transcript=SENTENCE, fps=FPS)
    assert spoken.phones_source == "forced-alignment"
    assert len(m_words(spoken.words)) == len(M_WORDS)
    assert_covering(spoken.phones, spoken.audio.duration)
    assert features.num_frames == math.ceil(spoken.audio.duration * FPS)


def test_load_speech_recognises_speech(speech_wav):
    spoken, features = load_speech(audio_path=speech_wav, fps=FPS)
    assert spoken.phones_source == "speech-recognition"
    assert "M" in {p.label for p in spoken.phones}
    assert_covering(spoken.phones, spoken.audio.duration)
    assert features.vad.max() > 0.9


def test_noise_gives_silence_not_an_error(tmp_path):
    path = tmp_path / "hiss.wav"
    save_wav(Audio((0.2 * np.random.default_rng(1).standard_normal(2 * RATE)).astype(np.float32), RATE), path)
    spoken, _ = load_speech(audio_path=path)
    assert [p.label for p in spoken.phones] == [SILENCE]


def test_digital_silence_is_an_error(tmp_path):
    path = tmp_path / "silence.wav"
    save_wav(Audio(np.zeros(2 * RATE, np.float32), RATE), path)
    with pytest.raises(AvatarError, match="no speech") as error:
        load_speech(audio_path=path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("kwargs", [{}, {"audio_path": "x.wav", "text": "hi"}])
def test_exactly_one_input(kwargs):
    with pytest.raises(AvatarError):
        load_speech(**kwargs)


def test_cover_timeline_fills_gaps_and_removes_overlaps():
    phones = [Phone("M", 0.5, 1.0), Phone("AA", 0.9, 1.2), Phone("SIL", 1.2, 1.3)]
    covered = cover_timeline(phones, 2.0)
    assert [p.label for p in covered] == ["SIL", "M", "AA", "SIL"]
    assert_covering(covered, 2.0)
