"""Tests of the motion-space diffusion framework (avatar.diffusion), tiny configs on CPU."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from avatar.diffusion import (  # noqa: E402
    Cond,
    Dropped,
    EDMPrecond,
    Guided,
    MotionTransformer,
    MotionTransformerConfig,
    PerSampleNoise,
    dropout_conditions,
    edm_loss,
    edm_scalings,
    karras_sigmas,
    load_model,
    loss_weight,
    per_condition,
    read_spec,
    sample_euler,
    sample_heun,
    save_model,
    seeded_noise,
)
from avatar.errors import AvatarError  # noqa: E402

T, C, CA, K = 12, 3, 4, 2  # frames, motion channels, audio channels, prefix frames
SAMPLERS = [sample_euler, sample_heun]


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine has 2 shared cores; one thread is also the fastest for tiny models."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> EDMPrecond:
    """An untrained denoiser with every kind of condition; random (non-zero) output layer."""
    torch.manual_seed(0)
    cfg = MotionTransformerConfig(motion_dim=C, frame_conds={"audio": CA}, global_conds={"gaze": 2},
                                  prefix_frames=K, width=16, depth=2, heads=2, causal=True)
    net = MotionTransformer(cfg)
    torch.nn.init.normal_(net.out_proj.weight, std=0.3)
    for p in [*net.frame_null.values(), *net.global_null.values(), net.prefix_null]:
        torch.nn.init.normal_(p, std=0.5)
    return EDMPrecond(net, sigma_data=0.5).eval()


def make_cond(B: int, seed: int = 0) -> Cond:
    g = torch.Generator().manual_seed(seed)
    return Cond.of(audio=torch.randn(B, T, CA, generator=g), gaze=torch.randn(B, 2, generator=g),
                   prefix=torch.randn(B, K, C, generator=g))


def sample(D, seeds, cond, sampler=sample_heun, steps=2, churn=0.0):
    noise = PerSampleNoise(seeds)
    sigmas = karras_sigmas(steps)
    x = noise.randn((T, C)) * sigmas[0].float()
    with torch.no_grad():
        return sampler(D, x, sigmas, cond, churn=churn, noise=noise)


# --- sigma grid and EDM preconditioning -------------------------------------------------

def test_karras_sigmas():
    s = karras_sigmas(10, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert s.dtype == torch.float64 and s.shape == (11,)
    assert s[-1] == 0.0 and math.isclose(s[0], 80.0) and math.isclose(s[-2], 0.002)
    assert bool((s[1:] < s[:-1]).all())
    assert karras_sigmas(1).tolist() == [80.0, 0.0]


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 2.0, 80.0])
def test_edm_scalings_match_table_1(sigma):
    sd = 0.5
    c_skip, c_out, c_in, c_noise = edm_scalings(torch.tensor(sigma, dtype=torch.float64), sd)
    assert math.isclose(c_skip, sd**2 / (sigma**2 + sd**2), rel_tol=1e-12)
    assert math.isclose(c_out, sigma * sd / math.sqrt(sigma**2 + sd**2), rel_tol=1e-12)
    assert math.isclose(c_in, 1 / math.sqrt(sigma**2 + sd**2), rel_tol=1e-12)
    assert math.isclose(c_noise, math.log(sigma) / 4, rel_tol=1e-12)
    lam = loss_weight(torch.tensor(sigma, dtype=torch.float64), sd)
    assert math.isclose(lam, (sigma**2 + sd**2) / (sigma * sd) ** 2, rel_tol=1e-12)
    assert math.isclose(lam, 1 / c_out**2, rel_tol=1e-9)


def test_edm_precond_applies_scalings_per_sample():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x_in, c_noise, cond):
            seen["x_in"], seen["c_noise"] = x_in, c_noise
            return torch.full_like(x_in, 2.0)

    sd, sigma = 0.7, torch.tensor([0.1, 1.0, 10.0])
    D = EDMPrecond(Probe(), sigma_data=sd)
    x = torch.randn(3, T, C)
    out = D(x, sigma)
    s = sigma.view(3, 1, 1)
    c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt()
    torch.testing.assert_close(out, c_skip * x + c_out * 2.0)
    torch.testing.assert_close(seen["x_in"], x / (s**2 + sd**2).sqrt())
    torch.testing.assert_close(seen["c_noise"], sigma.log() / 4)
    assert D(x, 1.0).shape == (3, T, C)  # a float sigma is broadcast


# --- samplers and seeded noise ----------------------------------------------------------

def test_seeded_noise_depends_on_own_seed_only():
    a = seeded_noise((T, C), [5])
    b = seeded_noise((T, C), [1, 5, 9])
    assert b.shape == (3, T, C) and torch.equal(a[0], b[1])
    assert not torch.equal(b[0], b[1])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampler_shape_and_seeds(model, sampler):
    cond = make_cond(2)
    a = sample(model, [1, 2], cond, sampler)
    b = sample(model, [1, 2], cond, sampler)
    c = sample(model, [3, 4], cond, sampler)
    assert a.shape == (2, T, C) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("churn", [0.0, 5.0])
def test_sample_does_not_depend_on_its_batch(model, sampler, churn):
    cond = make_cond(3)
    alone = sample(model, [7], cond.select([1]), sampler, churn=churn)
    batched = sample(model, [3, 7, 11], cond, sampler, churn=churn)
    # Equal up to float32 rounding: batched matrix products may sum in another order.
    torch.testing.assert_close(batched[1:2], alone, atol=1e-4, rtol=1e-4)


def test_churn_needs_per_sample_noise(model):
    x = torch.randn(1, T, C) * 80
    with pytest.raises(ValueError, match="per-sample noise"):
        sample_euler(model, x, karras_sigmas(2), make_cond(1), churn=1.0)


def test_sampler_callback_sees_every_step(model):
    steps = []
    x = seeded_noise((T, C), [0]) * 80
    with torch.no_grad():
        sample_euler(model, x, karras_sigmas(3), make_cond(1), callback=lambda s: steps.append(s["i"]))
    assert steps == [0, 1, 2]


# --- conditions and guidance ------------------------------------------------------------

def test_absent_conditions_use_null_embeddings(model):
    x, sigma, cond = torch.randn(2, T, C), torch.tensor([0.5, 2.0]), make_cond(2)
    with torch.no_grad():
        full = model(x, sigma, cond)
        dropped = model(x, sigma, cond.drop("audio"))
        other = Cond.of(audio=torch.randn(2, T, CA) * 9, gaze=cond["gaze"], prefix=cond["prefix"])
        dropped_other_values = model(x, sigma, other.drop("audio"))
        missing = model(x, sigma, Cond.of(gaze=cond["gaze"], prefix=cond["prefix"]))
        unconditional = model(x, sigma, None)
        all_dropped = model(x, sigma, cond.drop("audio", "gaze", "prefix"))
    assert not torch.allclose(full, dropped)
    assert torch.equal(dropped, dropped_other_values)  # absent values are never read
    assert torch.equal(dropped, missing)
    torch.testing.assert_close(unconditional, all_dropped)
    with pytest.raises(KeyError):
        cond.drop("emotion")


def test_guidance_weight_one_is_the_conditional_output(model):
    x, sigma, cond = torch.randn(2, T, C), torch.tensor([0.3, 3.0]), make_cond(2)
    with torch.no_grad():
        out = model(x, sigma, cond)
        assert torch.equal(Guided(model, Dropped(model, ["audio"]), 1.0)(x, sigma, cond), out)
        assert torch.equal(per_condition(model, {"audio": 1.0, ("gaze", "prefix"): 1.0})(x, sigma, cond), out)
        # Autoguidance with the model as its own "bad version" is the model.
        assert torch.equal(Guided(model, model, 2.5)(x, sigma, cond), out)


def test_guidance_formulas(model):
    x, sigma, cond = torch.randn(2, T, C), torch.tensor([0.3, 3.0]), make_cond(2)
    with torch.no_grad():
        out = model(x, sigma, cond)
        no_audio = model(x, sigma, cond.drop("audio"))
        no_gaze = model(x, sigma, cond.drop("gaze"))
        cfg = Guided(model, Dropped(model, ["audio"]), 2.0)(x, sigma, cond)
        torch.testing.assert_close(cfg, no_audio + 2.0 * (out - no_audio))
        both = per_condition(model, {"audio": 2.0, "gaze": 3.0})(x, sigma, cond)
        torch.testing.assert_close(both, out + 1.0 * (out - no_audio) + 2.0 * (out - no_gaze))


def test_guidance_interval_guides_only_inside_it(model):
    x, cond = torch.randn(2, T, C), make_cond(2)
    calls = []

    def counted(x, sigma, cond=None):
        calls.append(x.shape[0])
        return model(x, sigma, cond)

    with torch.no_grad():
        D = per_condition(counted, {"audio": 2.0}, sigma_range=(0.5, 5.0))
        full = per_condition(model, {"audio": 2.0})
        sigma = torch.tensor([0.3, 3.0])  # one sample outside the interval, one inside
        mixed = D(x, sigma, cond)
        torch.testing.assert_close(mixed[0], model(x, sigma, cond)[0])
        torch.testing.assert_close(mixed[1], full(x, sigma, cond)[1])
        calls.clear()
        outside = D(x, torch.tensor(10.0), cond)
        assert calls == [2]  # one unguided call for the batch, not a doubled one
        torch.testing.assert_close(outside, model(x, torch.tensor(10.0), cond))


def test_dropout_conditions_is_seeded_and_per_sample():
    cond = make_cond(64)
    a = dropout_conditions(cond, 0.5, torch.Generator().manual_seed(1))
    b = dropout_conditions(cond, 0.5, torch.Generator().manual_seed(1))
    for name in cond.keys():
        assert torch.equal(a.present[name], b.present[name])
        assert 0 < int(a.present[name].sum()) < 64
    only_audio = dropout_conditions(cond, {"audio": 1.0})
    assert not only_audio.present["audio"].any() and only_audio.present["gaze"].all()


# --- loss ---------------------------------------------------------------------------------

def test_edm_loss_weights_and_temporal_term(model):
    B = 4
    x0, cond = torch.randn(B, T, C) * 0.5, make_cond(B)
    g = torch.Generator().manual_seed(0)
    sigma, noise = (torch.randn(B, generator=g) * 1.2 - 1.2).exp(), torch.randn(B, T, C, generator=g)
    with torch.no_grad():
        plain = edm_loss(model, x0, cond, sigma=sigma, noise=noise)
        w = torch.tensor([3.0, 1.0, 0.5])  # e.g. heavier on a mouth channel (KeyFace lambda_lower)
        weighted = edm_loss(model, x0, cond, sigma=sigma, noise=noise, weight=w)
        temporal = edm_loss(model, x0, cond, sigma=sigma, noise=noise, temporal_weight=w)
        x0_hat = model(x0 + sigma.view(B, 1, 1) * noise, sigma, cond)
    assert plain.shape == (B, T, C) and bool((plain >= 0).all())
    lam = loss_weight(sigma.view(B, 1, 1), model.sigma_data)
    torch.testing.assert_close(plain, lam * (x0_hat - x0) ** 2)
    torch.testing.assert_close(weighted, plain * w)
    extra = temporal - plain
    assert torch.equal(extra[:, 0], torch.zeros(B, C))
    expected = lam * w * ((x0_hat.diff(dim=1) - x0.diff(dim=1)) ** 2)
    torch.testing.assert_close(extra[:, 1:], expected, atol=1e-5, rtol=1e-4)
    # Seeded draws are reproducible.
    torch.testing.assert_close(edm_loss(model, x0, cond, generator=torch.Generator().manual_seed(3)),
                               edm_loss(model, x0, cond, generator=torch.Generator().manual_seed(3)))


# --- training on a synthetic dataset ------------------------------------------------------

SINE_T, SINE_FREQS, SINE_AMP = 24, 3, 0.7  # frames, cycles per window 1..3, amplitude


def sines(freq: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, Cond]:
    """(B, T, 2) sin/cos curves of `freq` cycles per window with a random phase."""
    phase = torch.rand(len(freq), generator=g) * 2 * math.pi
    angle = 2 * math.pi * freq[:, None] * torch.arange(SINE_T) / SINE_T + phase[:, None]
    x0 = SINE_AMP * torch.stack([angle.sin(), angle.cos()], dim=-1)
    return x0, Cond.of(freq=freq.float()[:, None] - 2.0)


def dominant_frequency(x: torch.Tensor) -> torch.Tensor:
    spectrum = torch.fft.rfft(x[..., 0], dim=1).abs()[:, 1:]  # skip the constant bin
    return spectrum.argmax(dim=1) + 1


def test_training_lowers_loss_and_samples_follow_condition():
    torch.manual_seed(1)
    cfg = MotionTransformerConfig(motion_dim=2, global_conds={"freq": 1}, width=32, depth=2, heads=2)
    D = EDMPrecond(MotionTransformer(cfg))
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    g_eval = torch.Generator().manual_seed(123)
    x_eval, c_eval = sines(torch.randint(1, SINE_FREQS + 1, (256,), generator=g_eval), g_eval)
    s_eval = (torch.randn(256, generator=g_eval) * 1.2 - 1.2).exp()
    n_eval = torch.randn(x_eval.shape, generator=g_eval)

    def eval_loss() -> float:
        with torch.no_grad():
            return edm_loss(D, x_eval, c_eval, sigma=s_eval, noise=n_eval).mean().item()

    before = eval_loss()
    g = torch.Generator().manual_seed(0)
    for _ in range(400):
        x0, cond = sines(torch.randint(1, SINE_FREQS + 1, (32,), generator=g), g)
        loss = edm_loss(D, x0, dropout_conditions(cond, 0.1, g), generator=g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.6 * before, (before, after)

    D.eval()
    freq = torch.arange(60) % SINE_FREQS + 1
    _, cond = sines(freq, g)
    sigmas = karras_sigmas(10)
    x = seeded_noise((SINE_T, 2), list(range(60))) * sigmas[0].float()
    with torch.no_grad():
        out = sample_heun(per_condition(D, {"freq": 1.5}), x, sigmas, cond)
    est = dominant_frequency(out)
    accuracy = (est == freq).float().mean().item()
    shuffled = (est == freq[torch.randperm(60, generator=g)]).float().mean().item()
    chance = 1.0 / SINE_FREQS
    assert accuracy > chance + 0.2 and accuracy > shuffled + 0.15, (accuracy, shuffled)


# --- checkpoints --------------------------------------------------------------------------

def test_checkpoint_round_trip(model, tmp_path):
    path = save_model(tmp_path / "m" / "vasa.safetensors", model, extra={"step": 12})
    assert sorted(p.name for p in path.parent.iterdir()) == ["vasa.safetensors"]  # no temp files
    spec = read_spec(path)
    assert spec["kind"] == "edm" and spec["extra"] == {"step": 12}
    assert spec["config"] == model.to_config()
    assert spec["config"]["net"]["kind"] == "motion_transformer"
    loaded = load_model(path)
    assert isinstance(loaded, EDMPrecond) and isinstance(loaded.net, MotionTransformer)
    assert loaded.net.config == model.net.config and loaded.sigma_data == model.sigma_data
    x, sigma, cond = torch.randn(2, T, C), torch.tensor([0.2, 5.0]), make_cond(2)
    with torch.no_grad():
        assert torch.equal(loaded(x, sigma, cond), model(x, sigma, cond))
    save_model(path, loaded)  # overwrite in place
    assert read_spec(path)["extra"] == {}


def test_checkpoint_errors(tmp_path):
    with pytest.raises(AvatarError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(AvatarError, match="not a readable"):
        load_model(bad)
    import safetensors.torch

    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(AvatarError, match="not an avatar diffusion checkpoint"):
        load_model(foreign)
    with pytest.raises(TypeError, match="not a registered model"):
        save_model(tmp_path / "x.safetensors", torch.nn.Linear(2, 2))


def test_frame_conditions_may_cover_the_prefix_frames(model):
    """Audio given for K + T frames: its first K frames (the previous window's audio,
    VASA-1) reach the output; T-frame audio is the same as K + T with a null prefix part."""
    x, sigma, cond = torch.randn(1, T, C), torch.tensor([1.0]), make_cond(1)
    lead = torch.randn(1, K, CA)
    longer = Cond.of(audio=torch.cat([lead, cond["audio"]], 1), gaze=cond["gaze"], prefix=cond["prefix"])
    other = Cond.of(audio=torch.cat([lead * 5, cond["audio"]], 1), gaze=cond["gaze"], prefix=cond["prefix"])
    with torch.no_grad():
        assert not torch.allclose(model(x, sigma, longer), model(x, sigma, other))
        assert not torch.allclose(model(x, sigma, longer), model(x, sigma, cond))
