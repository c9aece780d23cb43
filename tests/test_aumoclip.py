"""AuMoCLIP (TANGO §3.2): losses, stop-gradient, training, checkpoints and retrieval accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from avatar.audio.types import Audio, AudioFeatures, Phone, Speech, Word
from avatar.diffusion.checkpoint import load_model
from avatar.errors import AvatarError
from avatar.gesture.aumoclip import (PHONE_CLASSES, PHONE_INDEX, AuMoCLIP, AuMoCLIPConfig, audio_embeddings,
                                     audio_inputs, global_contrastive_loss, local_contrastive_loss,
                                     local_masks, motion_embeddings, save_aumoclip)
from avatar.metrics.retrieval import (LowLevelRange, high_level_accuracy, low_level_accuracy,
                                      onset_baseline_accuracy, overlap_exclusion)
from avatar.training.aumoclip import AuMoCLIPSettings, train_aumoclip

FPS = 15.0  # half the paper's rate keeps windows (4 s = 60 frames) cheap
AUDIO_DIM, JOINTS = 6, 2
DELAY = 2  # frames: the synthetic motion follows its audio this late


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _paired(T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random audio (T, Fa) and motion (T, J, 15) = a fixed nonlinear map of the audio
    DELAY frames earlier, plus noise."""
    rng = np.random.default_rng(seed)
    audio = 3.0 * gaussian_filter1d(rng.normal(size=(T, AUDIO_DIM)), 1.5, axis=0)
    mix = np.random.default_rng(1234).normal(size=(AUDIO_DIM, JOINTS * 15)) / np.sqrt(AUDIO_DIM)
    motion = np.tanh(np.roll(audio, DELAY, axis=0) @ mix) + 0.05 * rng.normal(size=(T, JOINTS * 15))
    return audio.astype(np.float32), motion.reshape(T, JOINTS, 15).astype(np.float32)


def _small_model(stop_gradient: bool = True) -> AuMoCLIP:
    torch.manual_seed(0)
    config = AuMoCLIPConfig.for_fps(FPS, AUDIO_DIM, JOINTS * 15, width=16, embed_dim=8,
                                    stop_gradient=stop_gradient)
    return AuMoCLIP(config)


@pytest.fixture(scope="module")
def trained() -> AuMoCLIP:
    settings = AuMoCLIPSettings(steps=80, minutes=1.0, batch=8, width=32, embed_dim=32, lr=2e-3,
                                dropout=0.1, noise=0.05, eval_every=1000)
    return train_aumoclip([_paired(450, 0), _paired(450, 1)], FPS, settings, log=None, progress=False)


# -- inputs -----------------------------------------------------------------------------------
def test_audio_inputs_carry_time_aligned_phones():
    T, fps = 10, 10.0
    features = AudioFeatures(fps, np.full(T, 0.5, np.float32), np.r_[np.zeros(5), np.full(5, 100.0)],
                             np.zeros(T, np.float32), np.ones(T, np.float32), np.zeros((T, 40), np.float32))
    speech = Speech(Audio(np.zeros(16000, np.float32), 16000),
                    phones=[Phone("SIL", 0.0, 0.3), Phone("M", 0.3, 0.5), Phone("AA", 0.5, 1.0)],
                    words=[Word("ma", 0.3, 1.0)])
    x = audio_inputs(features, speech)
    assert x.shape == (T, 40 + 4 + len(PHONE_CLASSES) + 2)
    phones = x[:, 44:44 + len(PHONE_CLASSES)]
    assert phones.sum(1).tolist() == [1.0] * T  # one class per frame
    assert phones[:, PHONE_INDEX["SIL"]].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert phones[:, PHONE_INDEX["M"]].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert np.flatnonzero(x[:, -2]).tolist() == [3, 5]  # phone starts (silence does not count)
    assert np.flatnonzero(x[:, -1]).tolist() == [3]  # word start
    assert x[4, 41] == 0.0 and x[6, 41] == pytest.approx(np.log1p(1.0))  # log pitch, 0 unvoiced


# -- losses -----------------------------------------------------------------------------------
def test_local_masks_follow_the_paper():
    pos, neg = local_masks(40, positive=4, negative_factor=4)
    i = 20
    assert np.flatnonzero(pos[i].numpy()).tolist() == list(range(16, 25))  # i +- t
    # (i - k t, i - t) and (i + t, i + k t), open
    assert np.flatnonzero(neg[i].numpy()).tolist() == list(range(5, 16)) + list(range(25, 36))
    assert not (pos & neg).any()
    assert pos[0].sum() == 5 and neg[0].sum() == 11  # at the clip edge only one side exists


def test_local_loss_prefers_aligned_embeddings():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(_unit(rng.normal(size=(2, 80, 16))).astype(np.float32))
    aligned = local_contrastive_loss(a, a, 4, 4, temperature=0.1)
    shifted = local_contrastive_loss(a, torch.roll(a, 8, dims=1), 4, 4, temperature=0.1)
    random = local_contrastive_loss(a, torch.from_numpy(_unit(rng.normal(size=(2, 80, 16))).astype(np.float32)),
                                    4, 4, temperature=0.1)
    assert aligned < 0.2 and shifted > random > aligned


def test_global_loss_prefers_paired_clips_and_skips_excluded_negatives():
    rng = np.random.default_rng(1)
    a = torch.from_numpy(_unit(rng.normal(size=(6, 8))).astype(np.float32))
    scale = torch.tensor(np.log(10.0))
    paired = global_contrastive_loss(a, a, scale)
    assert paired < global_contrastive_loss(a, a.roll(1, dims=0), scale)
    twins = torch.cat([a[:1], a[:1]])  # two copies: each is a perfect negative of the other
    exclude = torch.ones(2, 2, dtype=torch.bool)
    assert global_contrastive_loss(twins, twins, scale, exclude) < 1e-6
    assert global_contrastive_loss(twins, twins, scale) == pytest.approx(np.log(2.0), abs=1e-5)


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_global_loss_does_not_train_the_low_level_encoders(stop_gradient):
    model = _small_model(stop_gradient)
    audio, motion = _paired(3 * model.config.window, 0)
    a = torch.from_numpy(audio).view(3, model.config.window, -1)
    m = torch.from_numpy(motion).view(3, model.config.window, -1)
    loss = global_contrastive_loss(model.embed_audio(a).high, model.embed_motion(m).high, model.logit_scale)
    loss.backward()
    low_grads = [p.grad for p in model.low_level_parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.high_level_parameters())
    if stop_gradient:  # TANGO §3.2
        assert all(g is None or not g.any() for g in low_grads)
    else:  # the ablation: gradient reaches them
        assert any(g is not None and g.abs().sum() > 0 for g in low_grads)


# -- retrieval accuracy -----------------------------------------------------------------------
def test_low_level_accuracy_is_perfect_for_perfect_embeddings_and_chance_for_random():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(3000, 16))
    assert low_level_accuracy(emb, emb, fps=30).accuracy == 1.0
    result = low_level_accuracy(emb, rng.normal(size=(3000, 16)), fps=30)
    assert result.chance == 0.25 and result.queries == 3000 - 2 * 16 + 1
    assert abs(result.accuracy - 0.25) < 0.03
    assert LowLevelRange.for_fps(15) == LowLevelRange(8, 2)
    valid = np.zeros(3000, bool)
    valid[100:200] = True  # only frames whose whole +-16 search range is valid are queries
    assert low_level_accuracy(emb, emb, 30, valid=valid, queries=None).queries == 100 - 32 + 1


def test_low_level_accuracy_finds_a_delay():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(500, 8))
    assert low_level_accuracy(emb, np.roll(emb, 3, axis=0), fps=30, seed=1).accuracy == 1.0  # within +-4
    assert low_level_accuracy(emb, np.roll(emb, 6, axis=0), fps=30, seed=1).accuracy == 0.0


def test_high_level_accuracy_perfect_and_random():
    rng = np.random.default_rng(4)
    emb = rng.normal(size=(600, 16))
    perfect = high_level_accuracy(emb, emb, queries=300)
    assert perfect.accuracy == 1.0 and perfect.chance == pytest.approx(1 / 256)
    random = high_level_accuracy(emb, rng.normal(size=(600, 16)), queries=3000)
    assert random.accuracy < 0.02
    # near-copies are never candidates: then chance grows as the pool shrinks
    exclude = overlap_exclusion(np.zeros(600), np.arange(600), min_separation=400)
    assert high_level_accuracy(emb, emb, exclude, queries=50).chance > 1 / 256


def test_onset_baseline_matches_beats_to_onsets():
    rng = np.random.default_rng(5)
    speed = 1.0 + 0.01 * rng.random(800)  # steady motion ...
    beats = rng.choice(800, size=30, replace=False)
    speed[beats] = 0.0  # ... with velocity minima (beats)
    onset = np.zeros(800)
    onset[beats] = 1.0  # audio onsets on the beats
    assert onset_baseline_accuracy(onset, speed, fps=30).accuracy > 0.6
    assert onset_baseline_accuracy(np.roll(onset, 10), speed, fps=30).accuracy < 0.2  # beats 10 frames late


# -- training and whole sequences -------------------------------------------------------------
def test_training_beats_random_on_held_out_data(trained):
    audio, motion = _paired(450, 7)  # never seen
    ea, em = audio_embeddings(trained, audio, hop_seconds=0.25), motion_embeddings(trained, motion, hop_seconds=0.25)
    low = low_level_accuracy(ea.low, em.low, FPS)
    assert low.accuracy > 0.6 > 2 * low.chance
    exclude = overlap_exclusion(np.zeros(len(ea.window_starts)), ea.window_starts, trained.config.window // 2)
    high = high_level_accuracy(ea.window_high, em.window_high, exclude, queries=1000)
    assert high.accuracy > 5 * high.chance


def test_training_is_deterministic_for_a_seed():
    settings = AuMoCLIPSettings(steps=3, batch=4, width=16, embed_dim=8, eval_every=1000, val_fraction=0.2)
    data = [_paired(200, 0)]
    one, two = (train_aumoclip(data, FPS, settings, log=None, progress=False) for _ in range(2))
    for (name, p), q in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.equal(p, q), name


def test_sequence_embeddings_any_length(trained):
    W = trained.config.window
    audio, motion = _paired(W + 37, 3)
    e = audio_embeddings(trained, audio, hop_seconds=1.0)
    assert e.low.shape == (W + 37, 32) and e.high.shape == (W + 37, 32)
    assert np.allclose(np.linalg.norm(e.low, axis=1), 1.0, atol=1e-5)
    assert e.window_starts.tolist() == [0, 15, 30, 37]  # hop 1 s; the last window ends at the end
    assert np.array_equal(e.high[0], e.window_high[0]) and np.array_equal(e.high[-1], e.window_high[-1])
    short = motion_embeddings(trained, motion[:20])  # shorter than a window: padded
    assert short.low.shape == (20, 32) and len(short.window_starts) == 1
    with pytest.raises(AvatarError):
        motion_embeddings(trained, motion[:, :1])  # wrong number of joints


def test_checkpoint_round_trip(trained, tmp_path):
    path = tmp_path / "aumoclip.safetensors"
    save_aumoclip(path, trained, extra={"fps": FPS})
    loaded = load_model(path)
    assert isinstance(loaded, AuMoCLIP) and loaded.config == trained.config
    audio, motion = _paired(100, 9)
    for embed, x in ((audio_embeddings, audio), (motion_embeddings, motion)):
        before, after = embed(trained, x), embed(loaded, x)
        assert np.array_equal(before.low, after.low) and np.array_equal(before.high, after.high)
