"""The loopy generator and its training, on tiny synthetic clips."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from avatar.generators.loopy import LoopyConfig, build_loopy  # noqa: E402
from avatar.generators.motion_vector import MOTION_DIM  # noqa: E402
from avatar.training.loop import TrainSettings  # noqa: E402

from synthetic_clips import check_seeded_any_length, generate, synthetic_clip  # noqa: E402

TINY = LoopyConfig(clip=8, segments=3, segment_tokens=2, n_mels=8, width=32, depth=2, heads=2, latents=4,
                   steps=3)
SETTINGS = TrainSettings(minutes=2, max_steps=300, batch=8, eval_every=50, lr=1e-3, threads=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from avatar.training.loopy import train_loopy

    torch.set_num_threads(1)
    clips = [synthetic_clip(s) for s in range(3)]
    path = tmp_path_factory.mktemp("loopy") / "loopy.safetensors"
    report = train_loopy(clips, path, TINY, SETTINGS, log=lambda _: None)
    return path, report


def test_segment_module_compresses_older_frames_more():
    from dataclasses import asdict

    from avatar.generators.loopy_model import context_length, pooling_matrix, segment_spans

    spans = segment_spans(5, 4, 2)
    assert len(spans) == 20 and spans[:4] == [(-1, -1, 0), (-2, -2, 0), (-3, -3, 0), (-4, -4, 0)]
    assert spans[4] == (-6, -5, 1) and spans[-1] == (-124, -109, 4)  # every 16th frame, 5 s back at 25 fps
    covered = sorted(o for a, b, _ in spans for o in range(a, b + 1))
    assert covered == list(range(-124, 0))  # every frame in exactly one token
    cfg = asdict(LoopyConfig())
    P = pooling_matrix(cfg)
    assert P.shape == (20, 124) and context_length(cfg) == 124
    np.testing.assert_array_equal(P.sum(1), 1.0)  # each token samples one frame ...
    assert P[0, -1] == 1.0 and P[-1, 0] == 1.0  # ... the nearest the last one, the oldest frame -124
    assert [int(np.flatnonzero(row)[0]) - 124 for row in P[4:8]] == [-6, -8, -10, -12]  # stride 2 in segment 1
    short = asdict(LoopyConfig(long_context=False))
    assert context_length(short) == 4 and pooling_matrix(short).shape == (4, 4)


def test_missing_context_uses_the_learned_token():
    from avatar.diffusion.conditions import Cond
    from avatar.generators.loopy_model import CONTEXT, CONTEXT_FRAMES, context_length

    m = build_loopy(TINY)
    net = m.denoiser.net
    torch.nn.init.normal_(net.context_missing)
    L = context_length(m.config)
    ctx = torch.randn(2, L, MOTION_DIM)
    frames = torch.ones(2, L)
    frames[1, :-1] = 0  # sample 1 has only the last frame
    tokens = net.context_tokens(Cond.of(**{CONTEXT: ctx, CONTEXT_FRAMES: frames}), 2)
    none = net.context_tokens(Cond({}), 2)
    assert tokens.shape == (2, 6, 32)
    torch.testing.assert_close(tokens[1, 1:], none[1, 1:])  # incomplete tokens: missing token + place
    assert (tokens[1, 0] - none[1, 0]).abs().max() > 1e-3  # the complete one (the last frame) is real
    assert (tokens[0] - none[0]).abs().max() > 1e-3


def test_latents_are_queried_by_audio_at_sampling_and_by_motion_in_training():
    from avatar.diffusion.conditions import Cond
    from avatar.generators.loopy_model import SIGNALS, motion_signals

    m = build_loopy(TINY)
    lat = m.denoiser.net.latents
    k = TINY.audio_context
    B, N = 2, TINY.clip
    audio = torch.randn(B, N, (2 * k + 1) * (8 + 5))
    x0 = torch.randn(B, N, MOTION_DIM)
    signals = motion_signals(x0)
    assert signals.shape == (B, N, 3) and torch.isfinite(signals).all() and (signals >= 0).all()
    base = {"audio": torch.zeros(B, N + 2 * k, 13), SIGNALS: signals}
    from_audio = lat(audio, Cond(base, {SIGNALS: torch.zeros(B, dtype=torch.bool)}), B)
    from_motion = lat(audio, Cond(base, {SIGNALS: torch.tensor([True, False])}), B)
    torch.testing.assert_close(from_motion[1], from_audio[1])  # sample 1: audio query
    assert (from_motion[0] - from_audio[0]).abs().max() > 1e-4  # sample 0: motion query
    no_audio = lat(audio, Cond(base, {"audio": torch.zeros(B, dtype=torch.bool)}), B)
    torch.testing.assert_close(no_audio, lat.null.expand(B, N, -1))  # CFG's null: no audio, no latents
    # motion signals follow the motion: a still clip has none
    still = motion_signals(torch.zeros(1, N, MOTION_DIM))
    assert still.abs().max() == 0


def test_cross_attention_equals_torch_multihead_attention():
    from avatar.generators.loopy_model import CrossAttention

    torch.manual_seed(0)
    mine, ref = CrossAttention(32, 4), torch.nn.MultiheadAttention(32, 4, batch_first=True)
    torch.nn.init.normal_(mine.in_proj_bias)
    ref.load_state_dict(mine.state_dict())  # the same parameter names and layout
    q, kv = torch.randn(2, 5, 32), torch.randn(2, 9, 32)
    with torch.no_grad():
        torch.testing.assert_close(mine(q, kv), ref(q, kv, kv, need_weights=False)[0], atol=1e-5, rtol=1e-5)


def test_training_lowers_the_selection_loss(trained):
    path, report = trained
    assert report.lowest_select.select < 0.8 * report.history[0].select
    assert np.isfinite(report.kept.held_out) and report.steps == SETTINGS.max_steps


def test_two_step_sample_is_seeded_and_any_length(trained):
    check_seeded_any_length("loopy", trained[0])


def test_generated_jaw_follows_the_audio(trained):
    path, _ = trained
    clip = synthetic_clip(11, T=200)
    jaw = generate("loopy", path, clip.features).action("jawOpen")
    assert np.corrcoef(jaw, clip.features.energy)[0, 1] > 0.5


def test_checkpoint_loads_alone_in_a_fresh_process(trained):
    path, _ = trained
    code = ("import numpy as np; from avatar.diffusion.checkpoint import load_model; "
            f"m = load_model({str(path)!r}); "
            "g = {'gaze': np.zeros(2, np.float32), 'distance': np.zeros(1, np.float32), "
            "'emotion': np.zeros(2, np.float32)}; "
            "x = m.generate(np.zeros((30, 13), np.float32), g, steps=2); "
            "print(m.kind, m.config['audio_to_latents'], x.shape[0], x.shape[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["loopy", "True", "30", str(MOTION_DIM)]


def test_ablations_train_and_sample(tmp_path):
    from avatar.diffusion.checkpoint import load_model
    from avatar.training.loopy import train_loopy

    torch.set_num_threads(1)
    clips = [synthetic_clip(s) for s in range(2)]
    for name, cfg in {"short": LoopyConfig(**{**TINY.__dict__, "long_context": False}),
                      "nolat": LoopyConfig(**{**TINY.__dict__, "audio_to_latents": False})}.items():
        path = tmp_path / f"{name}.safetensors"
        train_loopy(clips, path, cfg, TrainSettings(max_steps=10, batch=4, eval_every=10, threads=1),
                    log=lambda _: None)
        m = load_model(path)
        assert (m.denoiser.net.latents is None) == (name == "nolat")
        assert len(generate("loopy", path, synthetic_clip(3, T=30).features, steps=2)) == 30


def test_context_of_a_training_clip_stays_in_its_split():
    from avatar.training.loopy import context_available

    allowed = np.ones(100, bool)
    allowed[40:50] = False
    assert context_available(allowed, 60, 124) == 10  # back to the gap
    assert context_available(allowed, 30, 124) == 30  # back to the clip's start
    assert context_available(allowed, 60, 5) == 5


def test_speak_end_to_end(portrait_path, tmp_path):
    from avatar.cli import main
    from avatar.config import AUDIO
    from avatar.training.loopy import train_loopy
    from avatar.video.reader import probe

    torch.set_num_threads(1)
    ckpt = tmp_path / "loopy.safetensors"  # tiny, on clips with the real number of mel bands
    train_loopy([synthetic_clip(s, n_mels=AUDIO.n_mels) for s in range(2)], ckpt, TINY,
                TrainSettings(max_steps=20, batch=4, eval_every=20, threads=1), log=lambda _: None)
    out = tmp_path / "loopy.mp4"
    code = main(["speak", "--image", str(portrait_path), "--text", "Hello there.", "--motion", "loopy",
                 "--checkpoint", str(ckpt), "-o", str(out), "-q"])
    assert code == 0 and out.exists()
    assert probe(out).num_frames > 10
