"""The torch side of the ``vlogger`` generator (see avatar.generators.vlogger).

A :class:`VloggerModel` is the causal motion transformer behind an x0-predicting denoiser,
the per-channel normalisation of motion (face, head and body channels) and audio learnt
from the training data, and the generator settings; all of it is in the checkpoint, so
``load_model(path)`` rebuilds a ready generator.

Conditions of the network (avatar.diffusion.transformer frame / global conditions):
- ``audio`` (B, T, (2k+1) Ca): each frame's audio features with k frames on each side;
- ``known`` (B, T, C + 1): frames already generated (normalised motion, zeros elsewhere)
  and a 0/1 column saying which frames they are: the temporal outpainting condition;
- ``gaze``, ``distance``, ``emotion`` (B, Cg): the global controls, as for vasa.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from avatar.diffusion.checkpoint import register_model
from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import X0Precond
from avatar.diffusion.guidance import per_condition
from avatar.diffusion.noise import seeded_noise
from avatar.diffusion.samplers import karras_sigmas, sample_euler
from avatar.diffusion.transformer import MotionTransformer, MotionTransformerConfig
from avatar.generators.motion_vector import AUDIO, BODY_DIM, GLOBAL_CONDS, MOTION_DIM, audio_dim
from avatar.generators.normalised import NormalisedModel, pad_edges, pad_to, sampling_threads, stack_audio

KNOWN = "known"
CHANNELS = MOTION_DIM + BODY_DIM  # C: face + head + gaze, then the upper-body joints
SEED_STRIDE = 100_003  # window w of seed s draws its noise from seed s * SEED_STRIDE + w


def known_condition(values: Tensor, mask: Tensor) -> Tensor:
    """(B, T, C) normalised frames and (B, T) 0/1 known flags -> (B, T, C + 1)."""
    mask = mask.to(values.dtype)[..., None]  # (B, T, 1)
    return torch.cat([values * mask, mask], dim=-1)


@register_model("vlogger")
class VloggerModel(NormalisedModel):
    kind = "vlogger"

    def __init__(self, config: dict, mean=None, std=None, audio_mean=None, audio_std=None):
        super().__init__(config, audio_dim(config["n_mels"]), mean, std, audio_mean, audio_std,
                         motion_channels=CHANNELS)
        stacked = (2 * config["audio_context"] + 1) * audio_dim(config["n_mels"])
        net = MotionTransformer(MotionTransformerConfig(
            motion_dim=CHANNELS, frame_conds={AUDIO: stacked, KNOWN: CHANNELS + 1},
            global_conds=dict(GLOBAL_CONDS), width=config["width"], depth=config["depth"],
            heads=config["heads"], causal=True))
        self.denoiser = X0Precond(net, sigma_data=config["sigma_data"])

    def forward(self, x, sigma, cond: Cond | None = None):
        """The denoiser D(x, sigma, cond) -> x0 on normalised motion (B, T, C)."""
        return self.denoiser(x, sigma, cond)

    # -- generation ----------------------------------------------------------------------
    def generate(self, audio: np.ndarray, globals_: dict[str, np.ndarray], seed: int = 0,
                 steps: int | None = None, guidance: dict | None = None,
                 overlap: int | None = None) -> np.ndarray:
        """(T, C) motion for (T, Ca) audio by temporal outpainting (VLOGGER §3.1)."""
        return self.windows(audio, globals_, seed, steps, guidance, overlap)[0]

    def windows(self, audio, globals_, seed=0, steps=None, guidance=None, overlap=None):
        """(motion (T, C), [each window's sampled (N, C) motion, denormalised]).

        Window 0 is N free frames; window w > 0 starts ``overlap`` frames before the end
        of what exists, is given those frames as known, and adds N - overlap new ones.
        """
        with sampling_threads():
            return self._windows(audio, globals_, seed, steps, guidance, overlap)

    def _windows(self, audio, globals_, seed, steps, guidance, overlap):
        cfg = self.config
        N, k = cfg["window"], cfg["audio_context"]
        O = cfg["overlap"] if overlap is None else int(overlap)
        if not 0 <= O < N:
            raise ValueError(f"overlap must be in [0, {N}), got {O}")
        T, new = len(audio), N - O
        W = 1 + max(0, -(-(T - N) // new))  # windows needed for T frames
        total = N + (W - 1) * new
        a = pad_edges(pad_to(audio, total), k)  # k frames beyond each side
        a = stack_audio(self.normalise_audio(torch.from_numpy(a))[None], k)  # (1, total, (2k+1) Ca)
        g = self.normalise_globals({n: torch.from_numpy(np.asarray(v, np.float32))[None]
                                    for n, v in globals_.items()})
        interval = cfg.get("guidance_interval")
        D = per_condition(self, cfg["guidance"] if guidance is None else guidance,
                          sigma_range=tuple(interval) if interval else None)
        sigmas = karras_sigmas(steps or cfg["steps"])
        out = torch.zeros(total, CHANNELS)  # normalised
        sampled = []
        for w in range(W):
            start = w * new
            mask = torch.zeros(1, N, dtype=torch.bool)
            mask[:, :O if w else 0] = True  # the overlap with what exists
            values = out[start:start + N][None]  # (1, N, C); zeros past the end
            cond = Cond.of(**{AUDIO: a[:, start:start + N], KNOWN: known_condition(values, mask)}, **g)
            x = seeded_noise((N, CHANNELS), [seed * SEED_STRIDE + w]) * sigmas[0]
            x0 = sample_euler(keep_known(D, values, mask), x, sigmas, cond).float()[0]  # (N, C)
            out[start:start + N] = torch.where(mask[0, :, None], out[start:start + N], x0)
            sampled.append(self.denormalise(out[start:start + N]).numpy())
        return self.denormalise(out[:T]).numpy(), sampled


def keep_known(D, values: Tensor, mask: Tensor):
    """The denoiser D with its prediction replaced by ``values`` (1, N, C) on the known
    frames ``mask`` (1, N): the ODE then carries those frames to exactly their values."""
    keep = mask[..., None]  # (1, N, 1)

    def D_known(x, sigma, cond=None):
        return torch.where(keep, values, D(x, sigma, cond))

    return D_known
