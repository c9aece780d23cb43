"""The torch side of the ``vasa`` generator: the denoiser plus what it needs to run alone.

A :class:`VasaModel` holds the EDM-preconditioned motion transformer, the per-channel
normalisation of motion and audio learnt from the training data, and the generator
settings (fps, window, prefix, steps, guidance); all of it is saved in the checkpoint, so
``avatar.diffusion.checkpoint.load_model(path)`` rebuilds a ready generator.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from avatar.diffusion.checkpoint import register_model
from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import EDMPrecond
from avatar.diffusion.guidance import per_condition
from avatar.diffusion.noise import seeded_noise
from avatar.diffusion.samplers import karras_sigmas, sample_euler
from avatar.diffusion.transformer import PREFIX, MotionTransformer, MotionTransformerConfig
from avatar.generators.motion_vector import AUDIO, GLOBAL_CONDS, MOTION_DIM, audio_dim

SEED_STRIDE = 100_003  # window w of seed s draws its noise from seed s * SEED_STRIDE + w
# Sampling runs one small window at a time: more threads only add synchronisation, and on
# a busy machine oversubscribed threads made it 15x slower (measured).
SAMPLING_THREADS = 1


@register_model("vasa")
class VasaModel(nn.Module):
    kind = "vasa"

    def __init__(self, config: dict, mean=None, std=None, audio_mean=None, audio_std=None):
        super().__init__()
        self.config = dict(config)
        net = MotionTransformer(MotionTransformerConfig(
            motion_dim=MOTION_DIM, frame_conds={AUDIO: audio_dim(config["n_mels"])},
            global_conds=dict(GLOBAL_CONDS), prefix_frames=config["prefix"],
            width=config["width"], depth=config["depth"], heads=config["heads"]))
        self.denoiser = EDMPrecond(net, sigma_data=config["sigma_data"])
        ca = audio_dim(config["n_mels"])
        self.register_buffer("mean", _vec(mean, MOTION_DIM, 0.0))
        self.register_buffer("std", _vec(std, MOTION_DIM, 1.0))
        self.register_buffer("audio_mean", _vec(audio_mean, ca, 0.0))
        self.register_buffer("audio_std", _vec(audio_std, ca, 1.0))

    # -- checkpoint protocol -------------------------------------------------------------
    def to_config(self) -> dict:
        return self.config

    @classmethod
    def from_config(cls, config: dict) -> "VasaModel":
        return cls(config)  # statistics are buffers: they come back with the weights

    # -- normalisation -------------------------------------------------------------------
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def normalise_audio(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.audio_mean) / self.audio_std

    def normalise_globals(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Global conditions divided by their scales (checkpoints from before the scales
        existed were trained on raw values: scale 1)."""
        scales = self.config.get("global_scales", {})
        return {k: v / scales.get(k, 1.0) for k, v in values.items()}

    def forward(self, x, sigma, cond: Cond | None = None):
        """The denoiser D(x, sigma, cond) -> x0 on normalised motion (B, N, C)."""
        return self.denoiser(x, sigma, cond)

    # -- generation ----------------------------------------------------------------------
    def generate(self, audio: np.ndarray, globals_: dict[str, np.ndarray], seed: int = 0,
                 steps: int | None = None, guidance: dict | None = None) -> np.ndarray:
        """(T, C) motion for (T, Ca) audio features, window by window (VASA-1 §3.2)."""
        threads = torch.get_num_threads()
        torch.set_num_threads(SAMPLING_THREADS)
        try:
            with torch.inference_mode():
                return self._generate(audio, globals_, seed, steps, guidance)
        finally:
            torch.set_num_threads(threads)

    def _generate(self, audio, globals_, seed, steps, guidance) -> np.ndarray:
        cfg = self.config
        N, K = cfg["window"], cfg["prefix"]
        T = len(audio)
        a = self.normalise_audio(torch.from_numpy(with_lead_in(_pad_to(audio, -(-T // N) * N), K)))  # (K+W*N, Ca)
        g = self.normalise_globals({k: torch.from_numpy(v)[None] for k, v in globals_.items()})  # each (1, Cg)
        D = per_condition(self, guidance if guidance is not None else cfg["guidance"])
        sigmas = karras_sigmas(steps or cfg["steps"])
        out, prev = [], None
        for w in range((len(a) - K) // N):
            values = {AUDIO: a[w * N:(w + 1) * N + K][None], **g}  # this window and the K before
            if prev is not None:
                values[PREFIX] = prev[:, -K:]
            cond = Cond.of(**values)
            x = seeded_noise((N, MOTION_DIM), [seed * SEED_STRIDE + w]) * sigmas[0]
            prev = sample_euler(D, x, sigmas, cond).float()  # (1, N, C)
            out.append(prev[0])
        return self.denormalise(torch.cat(out)[:T]).numpy()


def with_lead_in(a: np.ndarray, K: int) -> np.ndarray:
    """``a`` (T, Ca) with K copies of its first row in front: the 'previous' audio of the
    first window (frame i of the result is frame i - K of ``a``)."""
    return np.concatenate([np.repeat(a[:1], K, axis=0), a]).astype(np.float32)


def _vec(values, n: int, fill: float) -> torch.Tensor:
    if values is None:
        return torch.full((n,), fill, dtype=torch.float32)
    return torch.as_tensor(np.asarray(values, np.float32).reshape(n))


def _pad_to(a: np.ndarray, n: int) -> np.ndarray:
    """Repeat the last row so ``a`` has ``n`` rows."""
    if len(a) >= n:
        return np.ascontiguousarray(a[:n], dtype=np.float32)
    return np.concatenate([a, np.repeat(a[-1:], n - len(a), axis=0)]).astype(np.float32)
