"""Audio without a transcript: offline speech recognition, then forced alignment."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from avatar.audio.asr import Recognizer
from avatar.audio.io import save_wav
from avatar.audio.listen import RUN_PAD_S, listen, pieces
from avatar.audio.speech import load_speech
from avatar.audio.tts import synthesize
from avatar.audio.types import Audio, Word
from avatar.generators.base import Controls
from avatar.generators.registry import get_generator

SENTENCE = "My mother makes marvelous lemon muffins every Monday morning, and we eat them by the sea."
FPS = 25.0
RATE = 16000
TIMING_TOLERANCE_S = 0.08  # recognised /m/ centre vs. the voice's own /m/ centre


@pytest.fixture(scope="module")
def spoken():
    return synthesize(SENTENCE)


@pytest.fixture(scope="module")
def plain_wav(spoken, tmp_path_factory):
    """The bundled voice's speech as a plain audio file: nothing tells the engine the words."""
    path = tmp_path_factory.mktemp("listen") / "speech.wav"
    save_wav(spoken.audio, path)
    return path


def test_pieces_partition_the_timeline():
    words = [Word("a", 1.0, 1.2), Word("b", 1.3, 1.6), Word("c", 4.0, 4.5)]
    got = pieces(words, 6.0)
    assert got[0].start == 0.0 and got[-1].end == 6.0
    for before, after in zip(got, got[1:]):
        assert before.end == pytest.approx(after.start)
    runs = [[w.text for w in p.words] for p in got if p.words]
    assert runs == [["a", "b"], ["c"]]
    first = next(p for p in got if p.words)
    assert first.start == pytest.approx(1.0 - RUN_PAD_S) and first.end == pytest.approx(1.6 + RUN_PAD_S)
    # words too close for both pads: the cut falls in the middle of the gap
    close = pieces([Word("a", 1.0, 1.2), Word("b", 1.5, 1.7)], 3.0)
    assert [p.end for p in close if p.words][0] == pytest.approx(1.35)


def test_no_transcript_gives_aligned_words_and_timed_bilabials(plain_wav, spoken):
    speech, features = load_speech(audio_path=plain_wav, fps=FPS)
    assert speech.phones_source.startswith("speech-recognition")
    assert "monday" in speech.transcript.lower()
    heard = [0.5 * (p.start + p.end) for p in speech.phones if p.label == "M"]
    truth = [0.5 * (p.start + p.end) for p in spoken.phones if p.label == "M"]
    found = [min(abs(t - h) for h in heard) < TIMING_TOLERANCE_S for t in truth]
    assert len(truth) >= 8 and np.mean(found) >= 0.85, (truth, heard)


def test_no_transcript_lips_close_on_m(plain_wav, spoken):
    speech, features = load_speech(audio_path=plain_wav, fps=FPS)
    seq = get_generator("rules").generate(speech, features, Controls(), seed=0)
    gap = seq.action("jawOpen") - seq.action("mouthClose")  # (T,) lip gap in jaw units
    ms = [p for p in spoken.phones if p.label == "M"]
    closed = [gap[int((p.start + p.end) / 2 * FPS) - 1: int((p.start + p.end) / 2 * FPS) + 2].min() < 0.02
              for p in ms]
    assert np.mean(closed) >= 0.85
    assert np.percentile(gap, 90) > 0.1  # and between them the mouth opens


def test_recogniser_runs_with_no_network(monkeypatch, spoken):
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    segments = Recognizer().transcribe(spoken.audio)  # a fresh model load, offline
    text = " ".join(s.text for s in segments).lower()
    assert "mother" in text and all(s.trusted for s in segments)
    assert all(w.end >= w.start for s in segments for w in s.words)


def test_non_speech_is_not_heard_as_words():
    t = np.arange(3 * RATE) / RATE
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (262, 330, 392)).astype(np.float32)
    heard = listen(Audio(chord, RATE))
    assert [p.label for p in heard.phones if p.label != "SIL"] == []
    assert heard.words == []
