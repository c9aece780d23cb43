"""Tests of the rule-based motion generator (avatar.generators.rules), on synthetic speech."""

from __future__ import annotations

import time

import numpy as np
import pytest

from avatar.audio.types import Audio, AudioFeatures, Phone, Speech
from avatar.errors import AvatarError
from avatar.generators.base import Controls
from avatar.generators.registry import get_generator
from avatar.generators.eyes import blink_events
from avatar.generators.prosody import analyse
from avatar.generators.rules import RulesGenerator
from avatar.generators.visemes import PHONE_TO_VISEME, DIPHTHONGS, normalise_label, viseme_track
from avatar.motion.types import ACTIONS

FPS = 25.0
VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
SONORANTS = {"M", "N", "NG", "L", "R", "W", "Y"}
CONSONANTS = ["P", "B", "M", "F", "V", "T", "D", "N", "L", "S", "Z", "SH", "CH", "JH", "K", "G",
              "R", "W", "Y", "TH", "DH", "HH", "NG", "ZH"]
CMU_PHONES = sorted(VOWELS | set(CONSONANTS))
MOUTH = ["jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower",
         "mouthStretchL", "mouthStretchR", "upperLipRaise", "lowerLipDown"]
# "mama papa bob" and friends, durations (s) of natural to fast speech; short p/b/m included.
MAMA_PAPA_BOB = [
    [("M", 0.07), ("AA", 0.11), ("M", 0.06), ("AH", 0.12)],
    [("P", 0.05), ("AA", 0.1), ("P", 0.05), ("AH", 0.13)],
    [("B", 0.06), ("AA", 0.15), ("B", 0.07)],
    [("F", 0.09), ("UW", 0.15), ("D", 0.05)],
    [("W", 0.08), ("IY", 0.12), ("V", 0.07), ("IH", 0.08), ("M", 0.05)],
    [("HH", 0.06), ("AA", 0.16), ("T", 0.06)],
    [("Y", 0.05), ("UW", 0.14), ("Z", 0.08)],
]


def _features(phones: list[Phone], duration: float, rng: np.random.Generator) -> AudioFeatures:
    """Energy envelope, declining pitch with accents, onsets and VAD for a phone list."""
    T = int(round(duration * FPS))
    t = np.arange(T) / FPS
    energy, pitch, vad = np.zeros(T), np.zeros(T), np.zeros(T)
    for p in phones:
        inside = (t >= p.start) & (t < p.end)
        if p.label == "SIL":
            continue
        vad[inside] = 1.0
        energy[inside] = 0.8 if p.label in VOWELS else 0.6 if p.label in SONORANTS else 0.35
        if p.label in VOWELS | SONORANTS:
            pitch[inside] = 140.0 - 20.0 * t[inside] / max(duration, 1.0) \
                + 15.0 * np.sin(2.0 * np.pi * 0.8 * t[inside])
    energy = np.clip(np.convolve(energy, np.ones(3) / 3, mode="same"), 0, 1)
    onset = np.clip(np.diff(energy, prepend=0.0) * 2.0, 0.0, 1.0)
    return AudioFeatures(fps=FPS, energy=energy, pitch=pitch, onset=onset, vad=vad,
                         mel=rng.normal(size=(T, 40)))


def make_speech(words, lead=0.4, pause=0.3, tail=0.6, seed=0) -> tuple[Speech, AudioFeatures]:
    """Speech with SIL between words, and matching per-frame features."""
    phones, t = [Phone("SIL", 0.0, lead)], lead
    for word in words:
        for label, dur in word:
            phones.append(Phone(label, t, t + dur))
            t += dur
        if pause > 0:
            phones.append(Phone("SIL", t, t + pause))
            t += pause
    phones.append(Phone("SIL", t, t + tail))
    duration = t + tail
    audio = Audio(np.zeros(int(duration * 16000), np.float32), 16000)
    speech = Speech(audio=audio, phones=phones, phones_source="tts")
    return speech, _features(phones, duration, np.random.default_rng(seed))


def random_words(n: int, seed: int, rate: float = 1.0):
    """Random CV(C) words with durations of speech at ``rate`` times normal speed."""
    rng = np.random.default_rng(seed)
    vowels = sorted(VOWELS)
    words = []
    for _ in range(n):
        word = []
        for _ in range(rng.integers(1, 4)):
            if rng.random() < 0.8:
                word.append((str(rng.choice(CONSONANTS)), rng.uniform(0.045, 0.1) / rate))
            word.append((str(rng.choice(vowels)), rng.uniform(0.07, 0.2) / rate))
            if rng.random() < 0.4:
                word.append((str(rng.choice(CONSONANTS)), rng.uniform(0.045, 0.1) / rate))
        words.append(word)
    return words


def speech_of_length(seconds: float, seed: int = 0) -> tuple[Speech, AudioFeatures]:
    words = random_words(int(seconds * 1.6), seed)
    speech, feats = make_speech(words, pause=0.25, seed=seed)
    return speech, feats


def silence(seconds: float, energy: np.ndarray | None = None, phones: bool = True, seed: int = 0):
    """All-SIL (or phone-less) input with vad 0; ``energy`` may carry noise or music."""
    T = int(round(seconds * FPS))
    rng = np.random.default_rng(seed)
    e = np.zeros(T) if energy is None else energy
    feats = AudioFeatures(fps=FPS, energy=e, pitch=np.zeros(T),
                          onset=np.clip(np.abs(np.diff(e, prepend=0.0)) * 3, 0, 1),
                          vad=np.zeros(T), mel=rng.normal(size=(T, 40)))
    ph = [Phone("SIL", 0.0, seconds)] if phones else []
    audio = Audio(np.zeros(int(seconds * 16000), np.float32), 16000)
    return Speech(audio=audio, phones=ph, phones_source="tts" if phones else "none"), feats


def at_middle(seq, phone: Phone, name: str) -> float:
    return float(seq.action(name)[int(round(0.5 * (phone.start + phone.end) * FPS))])


def gen(speech, feats, seed=0, **controls):
    return RulesGenerator().generate(speech, feats, Controls(**controls), seed=seed)


# -- contract ------------------------------------------------------------------------------
def test_registered_and_output_contract():
    speech, feats = make_speech(MAMA_PAPA_BOB)
    g = get_generator("rules")
    assert isinstance(g, RulesGenerator) and g.name == "rules"
    seq = g.generate(speech, feats, Controls(), seed=3)
    assert seq.num_frames == feats.num_frames and seq.fps == feats.fps
    for arr in (seq.rotation, seq.translation, seq.scale, seq.actions, seq.gaze):
        assert np.isfinite(arr).all()
    assert seq.actions.min() >= 0.0 and seq.actions.max() <= 1.0
    assert tuple(seq.action_names) == ACTIONS


def test_zero_frames_and_phones_past_the_audio():
    speech, _ = make_speech(MAMA_PAPA_BOB)
    empty = AudioFeatures(fps=FPS, energy=np.zeros(0), pitch=np.zeros(0), onset=np.zeros(0),
                          vad=np.zeros(0), mel=np.zeros((0, 40)))
    assert gen(speech, empty).num_frames == 0
    _, short = make_speech(MAMA_PAPA_BOB[:2])  # features shorter than the phones
    seq = gen(speech, short)
    assert seq.num_frames == short.num_frames and np.isfinite(seq.actions).all()


# -- lips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [1.0, 1.6])
def test_lips_closed_in_the_middle_of_every_bilabial(rate):
    words = MAMA_PAPA_BOB + random_words(60, seed=int(rate * 10), rate=rate)
    speech, feats = make_speech(words, pause=0.15)
    seq = gen(speech, feats)
    bilabials = [p for p in speech.phones if p.label in ("P", "B", "M")]
    assert len(bilabials) > 10 and min(p.end - p.start for p in bilabials) <= 0.05
    for p in bilabials:
        jaw, close = at_middle(seq, p, "jawOpen"), at_middle(seq, p, "mouthClose")
        assert jaw <= 0.08, (p, jaw)
        # mouthClose "undoes jawOpen's lip gap" (ARKit semantics): the lip gap is jaw - close
        assert jaw - close <= 0.01, (p, jaw, close)


def test_mouth_opens_on_open_vowels_and_follows_loudness():
    speech, feats = make_speech(MAMA_PAPA_BOB)
    seq = gen(speech, feats)
    for p in speech.phones:
        if p.label == "AA":
            gap = at_middle(seq, p, "jawOpen") - at_middle(seq, p, "mouthClose")
            assert gap >= 0.2, (p, gap)
    hah = next(p for p in speech.phones if p.label == "AA" and p.end - p.start >= 0.16)
    assert at_middle(seq, hah, "jawOpen") >= 0.4
    loud = AudioFeatures(fps=FPS, energy=np.clip(feats.energy * 1.25, 0, 1), pitch=feats.pitch,
                         onset=feats.onset, vad=feats.vad, mel=feats.mel)
    quiet = AudioFeatures(fps=FPS, energy=feats.energy * 0.4, pitch=feats.pitch,
                          onset=feats.onset, vad=feats.vad, mel=feats.mel)
    jaw_loud = at_middle(gen(speech, loud), hah, "jawOpen")
    assert jaw_loud > at_middle(gen(speech, quiet), hah, "jawOpen")


def test_rounded_and_labiodental_shapes():
    speech, feats = make_speech(MAMA_PAPA_BOB)
    seq = gen(speech, feats)
    for p in speech.phones:
        if p.label in ("UW", "W"):
            assert at_middle(seq, p, "mouthPucker") >= 0.4, p
        if p.label in ("F", "V"):
            assert at_middle(seq, p, "mouthRollLower") >= 0.5, p
            assert at_middle(seq, p, "jawOpen") <= 0.15, p
        if p.label == "IY":
            assert at_middle(seq, p, "mouthStretchL") >= 0.2, p


def test_mouth_never_pops():
    """Frame-to-frame change of every non-blink action stays below 0.35 at 25 fps."""
    for seed, rate in [(0, 1.0), (1, 1.4), (2, 1.8)]:
        speech, feats = make_speech(random_words(80, seed, rate), pause=0.1 * seed)
        for emotion in ("neutral", "excited", "sad"):
            seq = RulesGenerator().generate(speech, feats, Controls.from_emotion(emotion), seed)
            for name in ACTIONS:
                if name.startswith("eyeBlink"):
                    continue  # a blink closes in 1-2 frames by nature
                step = np.abs(np.diff(seq.action(name))).max()
                assert step <= 0.35, (name, seed, rate, emotion, step)
            assert np.degrees(np.abs(np.diff(seq.rotation, axis=0))).max() < 1.5  # < 37 deg/s


@pytest.mark.parametrize("with_phones", [True, False])
def test_silence_leaves_the_mouth_at_rest(with_phones):
    rng = np.random.default_rng(5)
    noise = np.clip(0.05 + 0.04 * rng.standard_normal(int(20 * FPS)), 0, 1)
    seq = gen(*silence(20.0, energy=noise, phones=with_phones))
    mouth = np.stack([seq.action(n) for n in MOUTH], axis=1)
    assert np.abs(mouth).max() < 0.01
    assert np.abs(np.diff(mouth, axis=0)).max() < 1e-3


@pytest.mark.parametrize("with_phones", [True, False])
def test_music_does_not_make_the_mouth_chatter(with_phones):
    t = np.arange(int(30 * FPS)) / FPS
    beat = 0.5 + 0.4 * np.maximum(np.sin(2 * np.pi * 2.0 * t), 0) ** 4  # 120 bpm, loud
    seq = gen(*silence(30.0, energy=np.clip(beat, 0, 1), phones=with_phones))
    mouth = np.stack([seq.action(n) for n in MOUTH], axis=1)
    assert np.abs(mouth).max() < 0.01


def test_without_phones_the_jaw_follows_loudness():
    speech, feats = make_speech(random_words(40, 4))
    speech.phones = []
    seq = gen(speech, feats)
    jaw = seq.action("jawOpen")
    assert jaw.max() > 0.2
    assert np.corrcoef(jaw, feats.energy)[0, 1] > 0.5
    assert jaw[feats.vad == 0][:5].max() < 0.01  # leading silence


# -- eyes ----------------------------------------------------------------------------------
def test_blink_rate_and_duration():
    speech, feats = speech_of_length(60.0)
    minutes = feats.num_frames / FPS / 60.0
    prosody = analyse(viseme_track(speech.phones, feats.num_frames / FPS), feats)
    for seed in range(6):
        seq = gen(speech, feats, seed=seed)
        lid = seq.blink
        starts = np.flatnonzero((lid[1:] > 0.5) & (lid[:-1] <= 0.5))
        assert 15 <= len(starts) / minutes <= 30, (seed, len(starts) / minutes)
        assert lid.max() >= 0.9  # blinks close the eye
        np.testing.assert_allclose(seq.action("eyeBlinkL"), seq.action("eyeBlinkR"), atol=0.03)
        closed = np.concatenate([[False], lid > 0.05, [False]]).astype(np.int8)
        lengths = np.flatnonzero(np.diff(closed) == -1) - np.flatnonzero(np.diff(closed) == 1)
        assert lengths.max() / FPS <= 0.44  # frame-sampled duration of any blink
        shut = np.concatenate([[False], lid > 0.5, [False]]).astype(np.int8)
        shut_frames = np.flatnonzero(np.diff(shut) == -1) - np.flatnonzero(np.diff(shut) == 1)
        assert np.median(shut_frames) >= 3  # a viewer sees the eye shut, not a flicker
        events = blink_events(np.random.default_rng(seed), prosody, FPS, 0.0)
        assert ((events.duration >= 0.1) & (events.duration <= 0.4)).all()
        assert np.diff(events.time).min() >= 0.5


def test_gaze_follows_the_control_with_small_saccades():
    speech, feats = speech_of_length(40.0)
    main = (0.1, -0.05)
    seq = gen(speech, feats, gaze=main)
    offset = seq.gaze - np.asarray(main)
    assert np.abs(np.median(offset, axis=0)).max() < np.radians(1.5)
    assert np.degrees(np.abs(offset).max()) < 10.0
    jumps = np.degrees(np.abs(np.diff(seq.gaze, axis=0)).max(axis=1))
    assert (jumps > 0.5).sum() >= 5  # some saccades happen ...
    assert np.mean(jumps < 0.3) > 0.8  # ... but mostly the eyes hold


# -- head ----------------------------------------------------------------------------------
def test_head_motion_is_natural_and_scales_with_the_control():
    speech, feats = speech_of_length(60.0)
    stds = np.array([np.degrees(gen(speech, feats, seed=s).rotation.std(axis=0)) for s in range(4)])
    yaw, pitch, roll = stds.mean(axis=0)
    assert 2.0 <= yaw <= 7.0 and 1.2 <= pitch <= 5.0 and 0.5 <= roll <= 3.0, stds
    base = gen(speech, feats, seed=1)
    double = gen(speech, feats, seed=1, head_motion=2.0)
    np.testing.assert_allclose(double.rotation.std(axis=0), 2 * base.rotation.std(axis=0),
                               rtol=0.02)
    still = gen(speech, feats, seed=1, head_motion=0.0, head_distance=1.3)
    assert np.abs(still.rotation).max() == 0.0 and np.abs(still.translation).max() == 0.0
    np.testing.assert_allclose(still.scale, 1.3, atol=1e-6)
    close = gen(speech, feats, seed=1, head_distance=1.3)
    assert abs(close.scale.mean() - 1.3) < 0.01 and close.scale.std() < 0.01


def test_idle_head_sways_less_than_a_speaking_head():
    idle = gen(*silence(30.0))
    speech, feats = speech_of_length(30.0)
    talking = gen(speech, feats)
    idle_yaw = np.degrees(idle.rotation[:, 0].std())
    talk_yaw = np.degrees(talking.rotation[:, 0].std())
    assert 0.3 < idle_yaw < talk_yaw


def test_arousal_increases_head_motion():
    speech, feats = speech_of_length(30.0)
    calm = np.mean([gen(speech, feats, seed=s, arousal=-0.8).rotation.std() for s in range(3)])
    excited = np.mean([gen(speech, feats, seed=s, arousal=0.9).rotation.std() for s in range(3)])
    assert excited > 1.3 * calm


# -- emotion -------------------------------------------------------------------------------
def test_emotion_presets_move_the_face_the_right_way():
    speech, feats = speech_of_length(20.0)

    def mean(emotion: str, name: str) -> float:
        seq = RulesGenerator().generate(speech, feats, Controls.from_emotion(emotion), seed=2)
        return float(seq.action(name).mean())

    assert mean("happy", "mouthSmileL") > mean("neutral", "mouthSmileL") + 0.2
    assert mean("happy", "eyeSquintL") > mean("neutral", "eyeSquintL")
    assert mean("sad", "browInnerUp") > mean("neutral", "browInnerUp") + 0.2
    assert mean("sad", "mouthFrownL") > mean("neutral", "mouthFrownL")
    assert mean("angry", "browDownL") > mean("neutral", "browDownL") + 0.2
    assert mean("surprised", "browOuterUpL") > mean("neutral", "browOuterUpL") + 0.1
    assert mean("surprised", "eyeWideL") > mean("neutral", "eyeWideL")
    sad = RulesGenerator().generate(speech, feats, Controls.from_emotion("sad"), seed=2)
    happy = RulesGenerator().generate(speech, feats, Controls.from_emotion("happy"), seed=2)
    assert sad.rotation[:, 1].mean() < happy.rotation[:, 1].mean()  # sad head hangs lower


def test_brows_rise_on_emphasis():
    speech, feats = speech_of_length(30.0)
    seq = gen(speech, feats)
    assert seq.action("browInnerUp").max() > 0.1
    assert np.mean(seq.action("browInnerUp") > 0.05) < 0.6  # raises, not a constant lift


def test_invalid_controls_are_user_errors():
    speech, feats = make_speech(MAMA_PAPA_BOB[:2])
    with pytest.raises(AvatarError):
        gen(speech, feats, head_motion=-1.0)
    with pytest.raises(AvatarError):
        gen(speech, feats, head_distance=0.0)
    with pytest.raises(AvatarError):
        gen(speech, feats, valence=float("nan"))
    clamped = gen(speech, feats, valence=5.0)
    assert np.isfinite(clamped.actions).all() and clamped.actions.max() <= 1.0


# -- determinism and speed -----------------------------------------------------------------
def test_same_seed_same_motion_different_seed_different_motion():
    speech, feats = speech_of_length(20.0)
    a, b, c = gen(speech, feats, seed=7), gen(speech, feats, seed=7), gen(speech, feats, seed=8)
    for field in ("rotation", "translation", "scale", "actions", "gaze"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.allclose(a.rotation, c.rotation)
    assert not np.allclose(a.blink, c.blink)
    assert not np.allclose(a.gaze, c.gaze)
    # lips depend on the speech only, not on the seed
    np.testing.assert_array_equal(a.action("jawOpen"), c.action("jawOpen"))


def test_sixty_seconds_generate_fast():
    speech, feats = speech_of_length(60.0)
    g = RulesGenerator()
    g.generate(speech, feats, Controls(), seed=0)  # warm-up (imports, caches)
    t0 = time.perf_counter()
    g.generate(speech, feats, Controls(), seed=1)
    assert time.perf_counter() - t0 < 0.5


# -- viseme table --------------------------------------------------------------------------
def test_every_arpabet_phone_has_a_viseme_and_labels_are_normalised():
    for phone in CMU_PHONES:
        assert phone in PHONE_TO_VISEME or phone in DIPHTHONGS, phone
    assert normalise_label("aa1") == "AA" and normalise_label("sp") == "SIL"
    track = viseme_track([Phone("XQ", 0.1, 0.2), Phone("AY1", 0.2, 0.4)], 0.5)
    assert len(track.start) == 5  # rest, unknown, AY split in two, rest
    assert np.allclose(track.start[1:], track.end[:-1]) and track.end[-1] == 0.5


def _lip_gap(seq) -> np.ndarray:
    """(T,) jaw opening the lips do not undo: 0 with the lips together."""
    return seq.action("jawOpen") - seq.action("mouthClose")


def test_pauses_between_words_keep_the_lips_parted_and_silence_around_speech_closes():
    words = [[("HH", 0.06), ("AA", 0.16), ("T", 0.06)], [("S", 0.08), ("AE", 0.15), ("D", 0.05)]]
    speech, feats = make_speech(words, lead=0.8, pause=0.5, tail=1.0)
    seq = RulesGenerator().generate(speech, feats, Controls(), seed=0)
    gap = _lip_gap(seq)
    pause = [p for p in speech.phones if p.label == "SIL"][1]  # the one between the words
    mid = int(round(0.5 * (pause.start + pause.end) * FPS))
    assert gap[mid] > 0.06  # lips apart, as real speakers rest between words
    assert gap[:int(0.3 * FPS)].max() < 0.01 and gap[-int(0.4 * FPS):].max() < 0.01


@pytest.mark.parametrize("label", ["F", "V", "W"])
def test_labiodentals_and_w_bring_the_lips_together(label):
    speech, feats = make_speech([[("AA", 0.15), (label, 0.09), ("AA", 0.15)]])
    seq = RulesGenerator().generate(speech, feats, Controls(), seed=0)
    phone = next(p for p in speech.phones if p.label == label)
    mid = int(0.5 * (phone.start + phone.end) * FPS)
    vowel = next(p for p in speech.phones if p.label == "AA")
    assert _lip_gap(seq)[mid] < 0.02 < _lip_gap(seq)[int(0.5 * (vowel.start + vowel.end) * FPS)]
