"""The torch side of the ``vasa`` generator: the denoiser plus what it needs to run alone.

A :class:`VasaModel` holds the EDM-preconditioned motion transformer, the per-channel
normalisation of motion and audio learnt from the training data, and the generator
settings (fps, window, prefix, steps, guidance); all of it is saved in the checkpoint, so
``avatar.diffusion.checkpoint.load_model(path)`` rebuilds a ready generator.
"""

from __future__ import annotations

import numpy as np
import torch

from avatar.diffusion.checkpoint import register_model
from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import EDMPrecond
from avatar.diffusion.guidance import per_condition
from avatar.diffusion.noise import seeded_noise
from avatar.diffusion.samplers import karras_sigmas, sample_euler
from avatar.diffusion.transformer import PREFIX, MotionTransformer, MotionTransformerConfig
from avatar.generators.motion_vector import AUDIO, GLOBAL_CONDS, MOTION_DIM, audio_dim
from avatar.generators.normalised import NormalisedModel, pad_to, sampling_threads

SEED_STRIDE = 100_003  # window w of seed s draws its noise from seed s * SEED_STRIDE + w


@register_model("vasa")
class VasaModel(NormalisedModel):
    kind = "vasa"

    def __init__(self, config: dict, mean=None, std=None, audio_mean=None, audio_std=None):
        super().__init__(config, audio_dim(config["n_mels"]), mean, std, audio_mean, audio_std)
        net = MotionTransformer(MotionTransformerConfig(
            motion_dim=MOTION_DIM, frame_conds={AUDIO: audio_dim(config["n_mels"])},
            global_conds=dict(GLOBAL_CONDS), prefix_frames=config["prefix"],
            width=config["width"], depth=config["depth"], heads=config["heads"]))
        self.denoiser = EDMPrecond(net, sigma_data=config["sigma_data"])

    def forward(self, x, sigma, cond: Cond | None = None):
        """The denoiser D(x, sigma, cond) -> x0 on normalised motion (B, N, C)."""
        return self.denoiser(x, sigma, cond)

    # -- generation ----------------------------------------------------------------------
    def generate(self, audio: np.ndarray, globals_: dict[str, np.ndarray], seed: int = 0,
                 steps: int | None = None, guidance: dict | None = None) -> np.ndarray:
        """(T, C) motion for (T, Ca) audio features, window by window (VASA-1 §3.2)."""
        with sampling_threads():
            return self._generate(audio, globals_, seed, steps, guidance)

    def _generate(self, audio, globals_, seed, steps, guidance) -> np.ndarray:
        cfg = self.config
        N, K = cfg["window"], cfg["prefix"]
        T = len(audio)
        a = self.normalise_audio(torch.from_numpy(with_lead_in(pad_to(audio, -(-T // N) * N), K)))  # (K+W*N, Ca)
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
