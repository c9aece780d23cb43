"""The keyface generator, its training and the general-sound stream, on tiny synthetic clips."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from avatar.audio.types import AudioFeatures  # noqa: E402
from avatar.generators.keyface import KeyFaceConfig, build_keyface  # noqa: E402
from avatar.generators.motion_vector import MOTION_DIM, emotion_proxy  # noqa: E402
from avatar.training.loop import TrainSettings  # noqa: E402

from synthetic_clips import FPS, check_seeded_any_length, synthetic_clip  # noqa: E402

TINY = KeyFaceConfig(stride=3, keyframes=6, prefix=2, n_mels=8, width=32, depth=2, interp_width=32,
                     interp_depth=1, heads=2, steps=3, interp_steps=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from avatar.training.keyface import train_keyface

    torch.set_num_threads(1)
    clips = [synthetic_clip(s) for s in range(3)]
    path = tmp_path_factory.mktemp("keyface") / "keyface.safetensors"
    report = train_keyface(clips, path, TINY, TrainSettings(minutes=2, max_steps=480, batch=8, eval_every=80, lr=1e-3,
                                                            threads=1), log=lambda _: None)
    return path, report


def _interp_case(model, B=3):
    from avatar.diffusion.conditions import Cond
    from avatar.generators.keyface_model import GIVEN, MASK, interp_audio_context, total_audio_dim

    L = model.config["stride"] + 1
    g = torch.Generator().manual_seed(0)
    given = torch.randn(B, L, MOTION_DIM, generator=g)
    mask = torch.zeros(B, L, 1)
    mask[:, 0] = mask[:, -1] = 1
    audio = torch.randn(B, L, (2 * interp_audio_context(model.config) + 1) * total_audio_dim(model.config), generator=g)
    return given, mask, Cond.of(audio=audio, **{GIVEN: given, MASK: mask})


def test_training_lowers_the_selection_loss_and_takes_the_weak_snapshot(trained):
    from avatar.diffusion.checkpoint import load_model

    path, report = trained
    assert report.lowest_select.select < 0.8 * report.history[0].select
    assert np.isfinite(report.kept.held_out) and report.steps == 480
    m = load_model(path)
    assert int(m.weak_step) == 30  # 1/16 of the step budget
    main, weak = m.interp.state_dict(), m.interp_weak.state_dict()
    assert any(not torch.equal(main[k], weak[k]) for k in main)  # the weak one stopped early


def test_interpolation_keeps_the_given_keyframes(trained):
    from avatar.diffusion.checkpoint import load_model
    from avatar.diffusion.samplers import karras_sigmas, sample_euler

    m = load_model(trained[0])
    given, mask, cond = _interp_case(m)
    sigmas = karras_sigmas(4)
    with torch.no_grad():
        x0 = m.interp(torch.randn(given.shape) * 0.002, torch.full((3,), 0.002), cond)  # at sigma_min
        out = sample_euler(m.interp_guided(), torch.randn(given.shape, dtype=torch.float64) * sigmas[0], sigmas,
                           cond).float()
    assert out.shape == given.shape
    for y in (x0, out):
        torch.testing.assert_close(y[:, [0, -1]], given[:, [0, -1]], atol=1e-5, rtol=0)
    assert (out[:, 1:-1] - given[:, 1:-1]).abs().max() > 1e-3  # the gaps are filled, not copied


def test_missing_frame_embedding_is_learnt(trained):
    from avatar.diffusion.checkpoint import load_model
    from avatar.diffusion.edm import edm_loss

    m = load_model(trained[0])
    assert m.interp.missing.requires_grad and m.interp.missing.abs().max() > 0  # trained away from its init 0
    fresh = build_keyface(TINY)
    assert fresh.interp.missing.abs().max() == 0
    given, mask, cond = _interp_case(fresh)
    for p in fresh.interp.parameters():
        p.grad = None
    torch.nn.init.normal_(fresh.interp.denoiser.net.out_proj.weight, std=0.1)  # past the zero init
    edm_loss(fresh.interp, given, cond, generator=torch.Generator().manual_seed(1)).mean().backward()
    assert fresh.interp.missing.grad is not None and fresh.interp.missing.grad.abs().max() > 0
    assert all(not p.requires_grad for p in fresh.interp_weak.parameters())


def test_autoguidance_weight_one_is_the_main_model(trained):
    from avatar.diffusion.checkpoint import load_model

    m = load_model(trained[0])
    given, mask, cond = _interp_case(m)
    x, sigma = torch.randn(given.shape), torch.full((3,), 1.3)
    with torch.no_grad():
        main = m.interp(x, sigma, cond)
        torch.testing.assert_close(m.interp_guided(1.0)(x, sigma, cond), main, atol=0, rtol=0)
        assert (m.interp_guided(2.0)(x, sigma, cond) - main).abs().max() > 1e-5  # the weak twin differs


def test_two_step_sample_is_seeded_and_any_length(trained):
    check_seeded_any_length("keyface", trained[0])


def test_checkpoint_loads_alone_in_a_fresh_process(trained):
    path, _ = trained
    code = ("import numpy as np; from avatar.diffusion.checkpoint import load_model; "
            f"m = load_model({str(path)!r}); from avatar.generators.keyface_model import total_audio_dim; "
            "g = {'gaze': np.zeros(2, np.float32), 'distance': np.zeros(1, np.float32), "
            "'emotion': np.zeros(2, np.float32)}; "
            "x = m.generate(np.zeros((40, total_audio_dim(m.config)), np.float32), g, steps=2); "
            "print(m.kind, x.shape[0], x.shape[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["keyface", "40", str(MOTION_DIM)]


def test_speak_end_to_end(portrait_path, tmp_path):
    from avatar.config import AUDIO
    from avatar.cli import main
    from avatar.training.keyface import train_keyface
    from avatar.video.reader import probe

    torch.set_num_threads(1)
    ckpt = tmp_path / "kf.safetensors"  # a tiny checkpoint on clips with the real number of mel bands
    train_keyface([synthetic_clip(s, n_mels=AUDIO.n_mels) for s in range(2)], ckpt, TINY,
                  TrainSettings(max_steps=20, batch=4, eval_every=20, threads=1), log=lambda _: None)
    out = tmp_path / "kf.mp4"
    code = main(["speak", "--image", str(portrait_path), "--text", "Hello there.", "--motion", "keyface",
                 "--checkpoint", str(ckpt), "-o", str(out), "-q"])
    assert code == 0 and out.exists()
    assert probe(out).num_frames > 10


def test_interpolation_audio_sees_neighbouring_frames():
    from avatar.generators.keyface_model import gap_audio, interp_audio_context

    a = np.arange(20, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # frame t has value t
    out = gap_audio(a, [0, 14], L=6, k=2)
    assert out.shape == (2, 6, 15)
    np.testing.assert_array_equal(out[0, 3].reshape(5, 3)[:, 0], [1, 2, 3, 4, 5])  # frame 3 and two each side
    np.testing.assert_array_equal(out[1, 5].reshape(5, 3)[:, 0], [17, 18, 19, 19, 19])  # clamped at the end
    assert interp_audio_context({}) == 0  # checkpoints from before it load as they were trained
    assert interp_audio_context(build_keyface(TINY).config) == TINY.interp_audio_context == 2


def test_emotion_track_matches_emotion_proxy():
    from avatar.training.keyface import emotion_track

    clip = synthetic_clip(2, T=120)
    allowed = np.ones(120, bool)
    allowed[60:70] = False
    track = emotion_track(clip.motion, allowed, half=5)
    for t in (5, 30, 59, 75, 119):
        run = (0, 60) if t < 60 else (70, 120)
        lo, hi = max(run[0], t - 5), min(run[1], t + 6)
        np.testing.assert_allclose(track[t], emotion_proxy(clip.motion.slice(lo, hi)), atol=1e-5)
    assert np.all(track[60:70] == 0)


def test_general_sound_stream_responds_to_non_speech():
    from avatar.audio.sound import SOUND_CHANNELS, sound_frames

    T, rng = 100, np.random.default_rng(0)
    speech = slice(0, 50)  # voiced, peaked spectrum, vad = 1
    noise = slice(50, 100)  # a noise burst (breath / sigh): loud, unpitched, flat, vad = 0
    energy = np.full(T, 0.7)
    pitch = np.where(np.arange(T) < 50, 140.0, 0.0)
    vad = np.where(np.arange(T) < 50, 1.0, 0.0)
    mel = np.zeros((T, 12))
    mel[speech, :4] = 2.0  # formant energy low down
    mel[speech, 4:] = -1.0
    mel[noise] = rng.normal(0, 0.1, (50, 12))  # flat
    f = AudioFeatures(FPS, energy, pitch, np.zeros(T), vad, mel)
    s = sound_frames(f)
    assert s.shape == (T, len(SOUND_CHANNELS)) and np.isfinite(s).all()
    ch = {name: s[:, i] for i, name in enumerate(SOUND_CHANNELS)}
    for name in ("sound_level", "flatness"):
        assert ch[name][noise].mean() > ch[name][speech].mean() + 0.1, name
    silence = sound_frames(AudioFeatures(FPS, np.zeros(T), np.zeros(T), np.zeros(T), np.zeros(T), np.zeros((T, 12))))
    assert np.abs(silence[:, :3]).max() == 0  # no sound, no level
    # laughter-like: voiced bursts at 5 Hz outside speech -> voiced_nonspeech and burstiness
    t = np.arange(T) / FPS
    laugh_energy = 0.6 * (np.sin(2 * np.pi * 5 * t) > 0)
    laugh = sound_frames(AudioFeatures(FPS, laugh_energy, np.where(laugh_energy > 0, 250.0, 0.0), np.zeros(T),
                                       np.zeros(T), np.zeros((T, 12))))
    steady = sound_frames(AudioFeatures(FPS, np.full(T, 0.6), np.full(T, 140.0), np.zeros(T), np.ones(T),
                                        np.zeros((T, 12))))
    i, j = SOUND_CHANNELS.index("voiced_nonspeech"), SOUND_CHANNELS.index("burstiness")
    assert laugh[:, i].mean() > 0.4 and steady[:, i].max() == 0
    assert laugh[10:, j].mean() > steady[10:, j].mean() + 0.2
