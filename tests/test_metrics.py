"""Tests of the motion metrics, the CAPP model and ``avatar evaluate`` on constructed data.

Offline and small: synthetic signals with known answers, tiny models, a tiny dataset of
hand-made clips. Nothing here reads ../shared.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from avatar.audio.types import AudioFeatures, Phone
from avatar.face.geometry import HeadFrame
from avatar.face.model import FaceModel, face_template, seal_lips
from avatar.face.actions import build_basis
from avatar.metrics import motion as mm
from avatar.metrics.lipsync import CLOSED_GAP, bilabial_closure
from avatar.motion.types import MotionSeq

FPS = 25.0
N_MELS = 8


# -- constructed inputs -----------------------------------------------------------------
def sinusoid_motion(seconds: float, amplitude_deg: float, hz: float) -> MotionSeq:
    """A head turning left and right (yaw only), everything else at rest."""
    seq = MotionSeq.neutral(int(seconds * FPS), FPS)
    t = np.arange(len(seq)) / FPS
    seq.rotation[:, 0] = np.radians(amplitude_deg) * np.sin(2 * np.pi * hz * t)
    return seq


def blink_train(num_frames: int, starts: list[int], length: int, level: float = 1.0) -> np.ndarray:
    """(T,) eyelid curve closed to ``level`` for ``length`` frames at each start."""
    curve = np.zeros(num_frames)
    for s in starts:
        curve[s:s + length] = level
    return curve


@pytest.fixture(scope="module")
def face() -> FaceModel:
    """The shipped canonical face, lips sealed, 200 px wide, centred in a 512 px image."""
    neutral = seal_lips(face_template()[0])
    frame = HeadFrame(np.eye(3), 200.0, np.array([256.0, 256.0, 0.0]))
    return FaceModel(neutral, build_basis(neutral), frame, frame.to_image(neutral)[:, :2])


# -- lip sync (avatar.metrics.lipsync) ----------------------------------------------------
def test_mouth_that_never_closes_scores_zero_bilabial_closure():
    phones = [Phone("M", 0.0, 0.2), Phone("AA", 0.2, 0.5), Phone("B", 0.5, 0.6), Phone("P", 0.8, 0.9)]
    always_open = np.full(int(1.0 * FPS), 5 * CLOSED_GAP)
    assert bilabial_closure(always_open, phones, FPS) == (0.0, 3)
    assert bilabial_closure(np.zeros_like(always_open), phones, FPS) == (1.0, 3)


# -- head and face motion ------------------------------------------------------------------
def test_delta_p_of_a_sinusoid_matches_its_mean_speed():
    amplitude, hz = 10.0, 0.5
    seq = sinusoid_motion(seconds=8.0, amplitude_deg=amplitude, hz=hz)  # whole periods
    # mean |d yaw/dt| of A sin(2 pi f t) is 4 A f per second; per frame / FPS; yaw is 1 of 3 angles
    expected = 4 * amplitude * hz / FPS / 3
    assert mm.delta_p(seq) == pytest.approx(expected, rel=0.01)
    assert mm.delta_p(MotionSeq.neutral(50, FPS)) == 0.0
    assert math.isnan(mm.delta_p(MotionSeq.neutral(1, FPS)))


def test_glo_and_exp_variation():
    seq = sinusoid_motion(seconds=8.0, amplitude_deg=10.0, hz=0.5)
    assert mm.glo_variation(seq) == pytest.approx(10.0 / math.sqrt(2) / 3, rel=0.01)
    assert mm.exp_variation(seq) == 0.0
    seq.set_action("jawOpen", np.tile([0.0, 1.0], len(seq) // 2))  # std 0.5 on one coefficient
    seq.set_action("eyeBlinkL", 1.0 - seq.action("jawOpen"))  # blinks are not expression
    assert mm.exp_variation(seq) == pytest.approx(0.5 / len(mm.EXPRESSION_ACTIONS))


def test_blink_rate_counts_closures_above_threshold_and_long_enough():
    T = int(30 * FPS)  # 30 s
    starts = list(range(50, T - 10, 125))  # one blink every 5 s: 6 blinks -> 12 per minute
    curve = blink_train(T, starts, length=4)
    assert len(starts) == 6
    assert mm.blink_rate(curve, fps=FPS) == pytest.approx(12.0)
    half_closed = blink_train(T, starts, length=4, level=0.3)  # below the 0.5 threshold
    assert mm.blink_rate(half_closed, fps=FPS) == 0.0
    flickers = blink_train(T, starts, length=1)  # 40 ms: counted by default, not with 100 ms minimum
    assert mm.blink_rate(flickers, fps=FPS) == pytest.approx(12.0)
    assert mm.blink_rate(flickers, fps=FPS, min_seconds=0.1) == 0.0
    seq = MotionSeq.neutral(T, FPS)
    seq.set_action("eyeBlinkL", curve)
    seq.set_action("eyeBlinkR", curve)
    assert mm.blink_rate(seq) == pytest.approx(12.0)


def test_diversity_is_the_mean_pairwise_distance():
    base = np.zeros((40, 3))
    assert mm.diversity([base, base.copy(), base.copy()]) == 0.0
    shifted = base.copy()
    shifted[:, 1] = 2.0
    assert mm.diversity([base, shifted]) == pytest.approx(2.0)
    assert mm.diversity([base, shifted, base]) == pytest.approx((2.0 + 0.0 + 2.0) / 3)
    assert math.isnan(mm.diversity([base]))


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert mm.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # a mean shift of 1 in every one of 4 dimensions adds |d mu|^2 = 4
    assert mm.frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=1e-6)
    wider = mm.frechet_distance(a, 2.0 * a)
    assert wider > 0.5


def test_landmark_distance_of_rendered_motions(face):
    seq = MotionSeq.neutral(10, FPS)
    truth = mm.motion_landmarks(face, seq)  # (10, 478, 3)
    assert truth.shape == (10, 478, 3)
    assert mm.landmark_distance(truth, truth) == 0.0
    moved = truth.copy()
    moved[:, :, 1] += 0.1 * face.face_width  # every point 0.1 face widths down
    assert mm.landmark_distance(moved, truth) == pytest.approx(0.1, rel=0.02)
    opened = seq.copy()
    opened.set_action("jawOpen", 1.0)
    assert mm.landmark_distance(mm.motion_landmarks(face, opened), truth) > 0.01
    turned = seq.copy()
    turned.rotation[:, 0] = 0.3  # unposed rendering ignores the head pose
    assert mm.landmark_distance(mm.motion_landmarks(face, turned), truth) == pytest.approx(0.0, abs=1e-9)
    assert mm.landmark_distance(mm.motion_landmarks(face, turned, posed=True), truth) > 0.01


# -- CAPP -----------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from avatar.metrics import capp as cp  # noqa: E402  (needs torch)

TINY_CAPP = dict(audio_dim=N_MELS + cp.AUDIO_SCALARS, window=8, width=16, embed_dim=16, max_shift=4, dropout=0.0)


def synthetic_speech(num_frames: int, seed: int) -> tuple[MotionSeq, AudioFeatures]:
    """Random per-frame audio, and motion that is a fixed function of it frame by frame."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(size=num_frames)
    mel = rng.normal(size=(num_frames, N_MELS))
    features = AudioFeatures(fps=FPS, energy=energy, pitch=rng.uniform(80, 250, num_frames),
                             onset=rng.uniform(size=num_frames), vad=np.ones(num_frames), mel=mel)
    motion = MotionSeq.neutral(num_frames, FPS)
    motion.set_action("jawOpen", energy)
    motion.set_action("mouthClose", 1.0 - energy)
    motion.rotation[:, 0] = np.radians(3.0) * mel[:, 1]  # yaw follows one mel band
    return motion, features


@pytest.fixture(scope="module")
def tiny_capp():
    """A tiny CAPP trained on synthetic speech where motion is a function of the audio."""
    series = [cp.Series.of(*synthetic_speech(200, seed)) for seed in range(3)]
    options = cp.TrainOptions(steps=150, batch=32, lr=3e-3, threads=1)
    return cp.train_capp(series, cp.CAPPConfig(**TINY_CAPP), options)


def test_capp_scores_aligned_pairs_high_and_pairs_shifted_by_two_or_more_near_zero(tiny_capp):
    motion, features = synthetic_speech(200, seed=99)  # not seen in training
    scores = cp.shift_scores(tiny_capp, motion, features, shifts=range(-4, 5))
    shifted = cp.misaligned_score(scores)
    assert scores[0] > 0.5
    assert abs(shifted) < 0.15
    assert scores[0] > shifted + 0.4
    assert cp.capp_score(tiny_capp, motion, features) == pytest.approx(scores[0])


def test_shifting_motion_against_its_audio_lowers_the_score(tiny_capp):
    motion, features = synthetic_speech(200, seed=98)
    late = motion.copy()
    for name in ("rotation", "actions"):
        setattr(late, name, np.roll(getattr(motion, name), 3, axis=0))  # motion 3 frames late
    assert cp.capp_score(tiny_capp, late, features) < cp.capp_score(tiny_capp, motion, features) - 0.3


def test_capp_checkpoint_rebuilds_the_model_from_the_file_alone(tiny_capp, tmp_path):
    path = tmp_path / "capp.safetensors"
    cp.save_capp(path, tiny_capp, {"note": "test"})
    loaded = cp.load_capp(path)
    assert loaded.config == tiny_capp.config
    motion, features = synthetic_speech(60, seed=5)
    assert cp.capp_score(loaded, motion, features) == pytest.approx(cp.capp_score(tiny_capp, motion, features))
    assert cp.motion_embeddings(loaded, motion, stride=4).shape == (len(range(0, 60 - 8 + 1, 4)), 16)


def test_window_starts_keep_windows_and_their_shifts_inside_usable_frames():
    mask = np.ones(30, bool)
    mask[10] = False
    starts = cp.window_starts(mask, window=4, margin=2)
    for t in starts:
        assert mask[t - 2:t + 4 + 2].all()
    assert set(starts) == {2, 3, 4} | set(range(13, 25))
    assert len(cp.window_starts(np.ones(5, bool), window=4, margin=1)) == 0


# -- avatar evaluate ------------------------------------------------------------------------
PHONE_CYCLE = ("SIL", "M", "AA", "B", "IY", "P", "OW", "S")
PHONE_SECONDS = 0.16


def synthetic_clip(name: str, face: FaceModel, num_frames: int, val_frames: int, seed: int):
    """A hand-made Clip: synthetic speech, its phones, and landmarks rendered from the motion."""
    from avatar.data.clip import Clip, ReferenceFace

    motion, features = synthetic_speech(num_frames, seed)
    phones = [Phone(PHONE_CYCLE[i % len(PHONE_CYCLE)], i * PHONE_SECONDS, (i + 1) * PHONE_SECONDS)
              for i in range(int(np.ceil(num_frames / FPS / PHONE_SECONDS)))]
    landmarks = mm.motion_landmarks(face, motion, posed=True).astype(np.float32)  # (T, 478, 3)
    return Clip(name=name, fps=FPS, motion=motion, landmarks=landmarks, tracked=np.ones(num_frames, bool),
                fit_residual=np.zeros(num_frames, np.float32), features=features, phones=phones,
                validation=[(num_frames - val_frames, num_frames)], reference=ReferenceFace.from_model(face, 0),
                source=f"{name}.mp4", video_size=(512, 512))


@pytest.fixture(scope="module")
def dataset(face, tmp_path_factory):
    """A dataset folder of two synthetic clips, each with its last 40 frames held out."""
    from avatar.data.clip import clip_path, save_clip

    folder = tmp_path_factory.mktemp("dataset")
    for i, frames in enumerate((120, 100)):
        save_clip(synthetic_clip(f"clip{i}", face, frames, val_frames=40, seed=10 + i), clip_path(folder, f"clip{i}"))
    return folder


TINY_TRAINING = dict(steps=20, batch=8, threads=1)


@pytest.fixture(scope="module")
def evaluated(dataset, tmp_path_factory):
    """One evaluation of the rules generator, 2 seeds, with a tiny CAPP trained on the fly."""
    from avatar.eval import evaluate

    out = tmp_path_factory.mktemp("eval")
    return out, evaluate(dataset, ["rules"], out, seeds=2, capp_options=cp.TrainOptions(**TINY_TRAINING))


def test_evaluate_writes_tables_and_plots_for_every_generator(evaluated):
    from avatar.eval import GROUND_TRUTH

    out, result = evaluated
    names = {p.name for p in result.files}
    assert names == {"metrics.md", "metrics.csv", "segments.csv", "results.json", "metrics.png",
                     "curves.png", "capp_shift.png"}
    assert all((out / n).stat().st_size > 0 for n in names)
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    truth, rules = result.table[GROUND_TRUTH], result.table["rules"]
    assert truth["lmd_mouth"] == 0.0 and truth["delta_p_ratio"] == pytest.approx(1.0)
    assert rules["lmd_mouth"] > 0.0 and np.isfinite(rules["capp"]) and np.isfinite(rules["fd_capp"])
    assert rules["diversity_head"] > 0.0  # the rules generator's head motion depends on the seed
    assert truth["bilabial_count"] > 0
    assert sorted(result.capp_shift) == list(range(-8, 9))
    # 1 ground truth + 2 seeds of one generator, on 2 held-out segments
    assert len(result.samples) == 2 * (1 + 2)
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["held_out_frames"] == 80 and set(saved["table"]) == {GROUND_TRUTH, "rules"}
    assert "| CAPP |" in (out / "metrics.md").read_text()


def test_evaluate_reuses_the_cached_capp_model_and_accepts_a_checkpoint(dataset, evaluated, tmp_path):
    from avatar.eval import evaluate

    out, first = evaluated
    stamp = (out / "capp.safetensors").stat().st_mtime_ns
    again = evaluate(dataset, ["rules"], out, seeds=2, plots=False, capp_options=cp.TrainOptions(**TINY_TRAINING))
    assert (out / "capp.safetensors").stat().st_mtime_ns == stamp  # same data and settings: not trained again
    assert again.table["rules"]["capp"] == pytest.approx(first.table["rules"]["capp"])
    other = evaluate(dataset, ["rules"], tmp_path, seeds=2, plots=False, capp_checkpoint=out / "capp.safetensors")
    assert other.table["rules"]["capp"] == pytest.approx(first.table["rules"]["capp"])
    assert not (tmp_path / "capp.safetensors").exists()


def test_evaluate_command_line(dataset, evaluated, tmp_path, capsys):
    from avatar.cli import EXIT_USER_ERROR, main

    capp = str(evaluated[0] / "capp.safetensors")
    argv = ["evaluate", "--data", str(dataset), "-o", str(tmp_path), "--methods", "rules", "--seeds", "1", "-q",
            "--capp", capp]
    assert main(argv) == 0
    assert (tmp_path / "metrics.md").is_file() and (tmp_path / "curves.png").is_file()
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "-o", str(tmp_path)]) == EXIT_USER_ERROR
    assert main(argv + ["--checkpoint", "vasa=x.safetensors"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "dataset folder not found" in err and "not among --methods" in err


def test_train_command_line_keeps_a_checkpoint_that_loads_alone(dataset, tmp_path, capsys):
    """Two short clips: too short for selection blocks, so one whole clip is the selection."""
    from avatar.cli import main
    from avatar.diffusion.checkpoint import load_model, read_spec

    out = tmp_path / "vasa.safetensors"
    assert main(["train", "--method", "vasa", "--data", str(dataset), "-o", str(out), "--steps", "3"]) == 0
    err = capsys.readouterr().err
    assert "11 training windows; selection: 31 windows of 1 clip(s)" in err
    assert "trained 3 steps" in err and "kept step 3" in err and "lowest held-out loss" in err
    assert load_model(out).kind == "vasa" and read_spec(out)["extra"]["step"] == 3
    assert main(["train", "--data", str(dataset), "-o", str(out), "--steps", "3", "--keep", "best", "-q"]) == 0
    with pytest.raises(SystemExit):  # argparse refuses, with the choices
        main(["train", "--data", str(dataset), "-o", str(out), "--keep", "first"])
    assert "choose from 'last', 'best'" in capsys.readouterr().err
