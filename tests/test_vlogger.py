"""The vlogger generator and its training, on tiny synthetic clips."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from avatar.generators.motion_vector import BODY_DIM, MOTION_DIM  # noqa: E402
from avatar.generators.vlogger import VloggerConfig, build_vlogger  # noqa: E402
from avatar.motion.types import BODY_JOINTS  # noqa: E402
from avatar.training.loop import TrainSettings  # noqa: E402

from synthetic_clips import check_seeded_any_length, generate, synthetic_clip  # noqa: E402

TINY = VloggerConfig(window=12, overlap=4, min_window=6, n_mels=8, width=32, depth=2, heads=2, steps=3)
SETTINGS = TrainSettings(minutes=2, max_steps=300, batch=8, eval_every=50, lr=1e-3, threads=1)
C = MOTION_DIM + BODY_DIM


def body_clip(seed: int, T: int = 300):
    """A synthetic clip whose shoulders rise and fall with a 4-s breath and follow the head's
    sway; its reference pose (frame 0 here) has zero residual."""
    clip = synthetic_clip(seed, T)
    t = np.arange(T) / clip.fps
    body = np.zeros((T, len(BODY_JOINTS), 2), np.float32)
    breath = 0.02 * (np.cos(2 * np.pi * 0.25 * t) - 1)  # 0 at frame 0, shoulders up on the inhale
    sway = 0.5 * clip.motion.rotation[:, 0]
    for j in (0, 1):  # the shoulders
        body[:, j, 1] = breath
        body[:, j, 0] = sway
    clip.motion.upper_body = body
    return clip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from avatar.training.vlogger import train_vlogger

    torch.set_num_threads(1)
    clips = [body_clip(0), synthetic_clip(1), body_clip(2)]  # one clip without a body track
    path = tmp_path_factory.mktemp("vlogger") / "vlogger.safetensors"
    report = train_vlogger(clips, path, TINY, SETTINGS, log=lambda _: None)
    return path, report


def test_the_mask_is_causal():
    """Changing frames t >= 5 (input and conditions) leaves the output of frames < 5 alone."""
    m = build_vlogger(TINY)
    net = m.denoiser.net
    for p in net.parameters():  # out_proj starts at zero: give every weight a value
        torch.nn.init.normal_(p, std=0.2)
    from avatar.diffusion.conditions import Cond
    from avatar.generators.vlogger_model import KNOWN, known_condition

    k = TINY.audio_context
    x = torch.randn(1, 12, C)
    audio = torch.randn(1, 12, (2 * k + 1) * (8 + 5))
    cond = Cond.of(audio=audio, **{KNOWN: known_condition(torch.zeros(1, 12, C), torch.zeros(1, 12))})
    x2, audio2 = x.clone(), audio.clone()
    x2[:, 5:] += 3.0
    audio2[:, 5:] -= 2.0
    cond2 = Cond.of(audio=audio2, **{KNOWN: known_condition(torch.zeros(1, 12, C), torch.zeros(1, 12))})
    with torch.no_grad():
        a, b = m(x, torch.tensor([1.0]), cond), m(x2, torch.tensor([1.0]), cond2)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-3


def test_the_denoiser_predicts_x0_directly():
    """X0Precond: D(x, sigma) is sigma_data times the network's own output (no skip of x),
    and the training loss is the plain squared error of x0."""
    from avatar.diffusion.edm import X0Precond, edm_loss, edm_scalings

    m = build_vlogger(TINY)
    x, sigma = torch.randn(2, 12, C), torch.tensor([0.5, 20.0])
    calls = {}

    def spy(module, args, out):
        calls["in"], calls["out"] = args[0], out

    handle = m.denoiser.net.register_forward_hook(spy)
    with torch.no_grad():
        out = m(x, sigma)
    handle.remove()
    c_in = edm_scalings(sigma.view(-1, 1, 1), TINY.sigma_data)[2]
    torch.testing.assert_close(calls["in"], c_in * x)
    torch.testing.assert_close(out, TINY.sigma_data * calls["out"])
    assert isinstance(m.denoiser, X0Precond)
    # at init the network outputs 0, so the x0 prediction is 0 whatever the input (an
    # EDM-skip denoiser would return c_skip * x)
    assert out.abs().max() == 0
    x0 = torch.randn(2, 12, C)
    loss = edm_loss(m, x0, None, sigma=sigma, noise=torch.randn(2, 12, C), sigma_weighting=False)
    torch.testing.assert_close(loss, x0**2)


def test_outpainting_keeps_the_overlap_and_costs_more_windows(trained):
    from avatar.diffusion.checkpoint import load_model

    model = load_model(trained[0])
    features = synthetic_clip(5, T=40).features
    from avatar.generators.motion_vector import audio_frames, global_conditions

    audio = audio_frames(features)
    g = global_conditions((0, 0), 1.0, 0.0, 0.0)
    for overlap in (0, 4, 8):
        motion, windows = model.windows(audio, g, seed=3, steps=2, overlap=overlap)
        new = TINY.window - overlap
        assert motion.shape == (40, C)
        assert len(windows) == 1 + -(-(40 - TINY.window) // new)
        for w in range(1, len(windows)):  # each window starts with the end of the one before
            if overlap:
                np.testing.assert_allclose(windows[w][:overlap], windows[w - 1][new:], atol=1e-5)
            start = w * new
            np.testing.assert_allclose(motion[start:min(start + TINY.window, 40)],
                                       windows[w][:min(TINY.window, 40 - start)], atol=1e-5)


def test_body_residual_is_zero_at_the_reference_pose_and_learnt(trained):
    path, report = trained
    assert report.steps == SETTINGS.max_steps and np.isfinite(report.kept.select)
    features = body_clip(0).features
    seq = generate("vlogger", path, features, seed=0, steps=3)
    assert seq.upper_body is not None and seq.upper_body.shape == (len(features.energy), len(BODY_JOINTS), 2)
    # the training residuals are 0 at the reference pose and the shoulders only ever rise
    # (y < 0): the generated shoulders stay near their reference, mostly above it
    shoulders = seq.upper_body[:, :2]
    assert np.abs(shoulders).max() < 0.1
    assert np.mean(shoulders[..., 1]) < 0.0
    # joints never seen in training (elbows ... hips) stay at the reference pose
    assert np.abs(seq.upper_body[:, 2:]).max() < 0.01
    # head motion 0 freezes the body too
    still = generate("vlogger", path, features, seed=0, steps=3, head_motion=0.0)
    assert np.abs(still.upper_body).max() == 0


def test_seeded_any_length(trained):
    check_seeded_any_length("vlogger", trained[0])


def test_fine_tuning_starts_from_the_checkpoint(trained, tmp_path):
    from avatar.diffusion.checkpoint import load_model
    from avatar.training.vlogger import train_vlogger

    general = load_model(trained[0])
    out = tmp_path / "person.safetensors"
    settings = TrainSettings(minutes=1, max_steps=20, batch=4, eval_every=10, lr=1e-4, threads=1,
                             init=str(trained[0]))
    train_vlogger([body_clip(9)], out, VloggerConfig(n_mels=8), settings, log=lambda _: None)
    tuned = load_model(out)
    assert tuned.config == general.config  # its own settings kept, not the default config's
    torch.testing.assert_close(tuned.mean, general.mean)  # and its normalisation
    with torch.no_grad():
        moved = [float((a - b).abs().max()) for a, b in zip(tuned.parameters(), general.parameters())]
    assert 0 < max(moved) < 0.05  # a few small steps away from the general model


def test_train_cli_refuses_init_for_a_method_that_cannot(tmp_path, capsys):
    from avatar.cli import main

    rc = main(["train", "--method", "vasa", "--data", str(tmp_path), "-o", str(tmp_path / "x.safetensors"),
               "--init", str(tmp_path / "none.safetensors")])
    assert rc == 2 and "--init" in capsys.readouterr().err
