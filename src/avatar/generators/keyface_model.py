"""The torch side of the ``keyface`` generator: both stages and what they need to run alone.

A :class:`KeyFaceModel` holds

- ``key``: the EDM-preconditioned keyframe transformer (KeyFace §3.2), conditioned on the
  audio around each keyframe (the S full-rate frames centred on it, stacked), gaze and
  head distance (global) and valence/arousal per keyframe (sinusoidal, added to the
  timestep embedding: KeyFace Eq. 2), plus the previous window's last P keyframes;
- ``interp`` and ``interp_weak``: the interpolation model (KeyFace §3.3) and its weak twin
  for autoguidance (KeyFace §3.7 Eq. 5; Karras et al. 2024 Eq. 2): the same network
  class, the weak one a snapshot of ``interp`` early in training;
- the per-channel normalisation of motion and audio, and the settings.

``avatar.diffusion.checkpoint.load_model(path)`` rebuilds it from the file alone.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from avatar.diffusion.checkpoint import register_model
from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import EDMPrecond
from avatar.diffusion.guidance import Guided, per_condition
from avatar.diffusion.noise import seeded_noise
from avatar.diffusion.samplers import karras_sigmas, sample_euler
from avatar.diffusion.transformer import PREFIX, MotionTransformer, MotionTransformerConfig
from avatar.generators.motion_vector import AUDIO, MOTION_DIM, audio_dim, audio_frames
from avatar.generators.normalised import NormalisedModel, sampling_threads

SEED_STRIDE = 100_003  # keyframe window w of seed s: seed s * SEED_STRIDE + w ...
GAP_SEED_OFFSET = 50_000  # ... gap j of the interpolation: s * SEED_STRIDE + GAP_SEED_OFFSET + j
KEY_GLOBALS = {"gaze": 2, "distance": 1}
EMOTION = "emotion"  # per-keyframe valence/arousal (an embed condition of the keyframe model)
GIVEN, MASK, KEYS = "given", "mask", "known"  # interpolation: given frames, 1 = given, their embedding


def total_audio_dim(config: dict) -> int:
    """Ca: speech stream + general-sound stream channels (KeyFace §3.4: A_wb = Concat(A_w, A_b))."""
    return audio_dim(config["n_mels"]) + config["sound_channels"]


def neighbourhood_offsets(S: int) -> np.ndarray:
    """Frame offsets of the S full-rate audio frames a keyframe token sees (centred)."""
    return np.arange(S) - S // 2


def keyframe_audio(a: np.ndarray, positions: np.ndarray, S: int) -> np.ndarray:
    """(n, S*Ca): the audio frames around each keyframe position, stacked (clamped at the ends)."""
    idx = np.clip(np.asarray(positions)[:, None] + neighbourhood_offsets(S)[None], 0, len(a) - 1)  # (n, S)
    return a[idx].reshape(len(idx), -1)


def interp_audio_context(config: dict) -> int:
    """k: audio frames on each side of a frame that the interpolation model sees (0 in
    checkpoints from before it existed)."""
    return config.get("interp_audio_context", 0)


def gap_audio(a: np.ndarray, starts, L: int, k: int) -> np.ndarray:
    """(n, L, (2k+1)*Ca): for each stretch of L frames from ``starts``, every frame's audio
    with its k neighbours on each side, stacked (clamped at the ends of ``a``)."""
    frames = np.asarray(starts)[:, None, None] + np.arange(L)[None, :, None] + np.arange(-k, k + 1)[None, None]
    return a[np.clip(frames, 0, len(a) - 1)].reshape(len(frames), L, -1)


class Interpolator(nn.Module):
    """The interpolation denoiser D(x, sigma, cond) on S+1 frames (KeyFace §3.3).

    ``cond[GIVEN]`` (B, L, C) holds the keyframes at the given positions, ``cond[MASK]``
    (B, L, 1) is 1 there and 0 at the frames to fill. The network sees the sequence
    {z_s, z_m, ..., z_m, z_e} (z_m: the learned missing-frame embedding) with the mask as
    one per-frame condition, and the full-rate audio (each frame with k neighbours on each
    side: a closure's cue lies partly outside a 5-frame gap). The given frames are imposed on
    the output x0, so the result equals the keyframes there exactly.
    """

    def __init__(self, config: dict):
        super().__init__()
        C, ca = MOTION_DIM, (2 * interp_audio_context(config) + 1) * total_audio_dim(config)
        net = MotionTransformer(MotionTransformerConfig(
            motion_dim=C, frame_conds={AUDIO: ca, KEYS: C + 1}, width=config["interp_width"],
            depth=config["interp_depth"], heads=config["heads"]))
        self.denoiser = EDMPrecond(net, sigma_data=config["sigma_data"])
        self.sigma_data = self.denoiser.sigma_data
        self.missing = nn.Parameter(torch.zeros(C))  # z_m (KeyFace §3.3), learned

    def forward(self, x, sigma, cond: Cond):
        given, mask = cond[GIVEN], cond[MASK]  # (B, L, C), (B, L, 1)
        seq = mask * given + (1.0 - mask) * self.missing  # s = {z_s, z_m, ..., z_m, z_e}
        net_cond = Cond({AUDIO: cond[AUDIO], KEYS: torch.cat([seq, mask], dim=2)}, {AUDIO: cond.present[AUDIO]})
        x0 = self.denoiser(x, sigma, net_cond)
        return mask * given + (1.0 - mask) * x0  # the keyframes stay what they are


@register_model("keyface")
class KeyFaceModel(NormalisedModel):
    kind = "keyface"

    def __init__(self, config: dict, mean=None, std=None, audio_mean=None, audio_std=None):
        super().__init__(config, total_audio_dim(config), mean, std, audio_mean, audio_std)
        S, ca = config["stride"], total_audio_dim(config)
        net = MotionTransformer(MotionTransformerConfig(
            motion_dim=MOTION_DIM, frame_conds={AUDIO: S * ca}, global_conds=dict(KEY_GLOBALS),
            embed_conds={EMOTION: 2}, prefix_frames=config["prefix"], width=config["width"],
            depth=config["depth"], heads=config["heads"]))
        self.key = EDMPrecond(net, sigma_data=config["sigma_data"])
        self.interp = Interpolator(config)
        self.interp_weak = Interpolator(config)  # autoguidance's weak model: never trained itself
        self.interp_weak.requires_grad_(False)
        self.register_buffer("weak_step", torch.zeros((), dtype=torch.long))  # 0: no snapshot yet

    def audio_input(self, speech, features) -> np.ndarray:
        """(T, Ca): speech stream and general-sound stream, concatenated (KeyFace §3.4)."""
        from avatar.audio.sound import sound_frames

        return np.concatenate([audio_frames(features), sound_frames(features)], axis=1).astype(np.float32)

    def snapshot_weak(self, step: int) -> None:
        """Copy the interpolation model into its weak twin (KeyFace §3.7: a reduced model
        trained 16x fewer steps)."""
        self.interp_weak.load_state_dict(self.interp.state_dict())
        self.weak_step.fill_(int(step))

    def interp_guided(self, w: float | None = None):
        """The interpolation denoiser with autoguidance, D_r + w (D_m - D_r) (KeyFace Eq. 5)."""
        w = self.config["autoguidance"] if w is None else w
        if int(self.weak_step) == 0:
            w = 1.0  # no weak snapshot (an untrained model): the main model alone
        return Guided(self.interp, self.interp_weak, w)

    def forward(self, x, sigma, cond=None):
        """The keyframe denoiser (the model's main D)."""
        return self.key(x, sigma, cond)

    # -- generation ----------------------------------------------------------------------
    def generate(self, audio: np.ndarray, globals_: dict, seed: int = 0, steps: int | None = None,
                 guidance: dict | None = None) -> np.ndarray:
        """(T, C) motion for (T, Ca) audio: keyframes window by window, then every gap at once."""
        with sampling_threads():
            keys = self._keyframes(audio, globals_, seed, steps, guidance)  # (n, C) normalised
            return self.denormalise(self._interpolate(keys, audio, seed, steps)[:len(audio)]).numpy()

    def _keyframes(self, audio, globals_, seed, steps, guidance) -> torch.Tensor:
        cfg = self.config
        S, T, P = cfg["stride"], cfg["keyframes"], cfg["prefix"]
        n = -(-(len(audio) - 1) // S) + 1  # keyframes at 0, S, ... up to the last frame or beyond
        windows = -(-n // T)
        a = self.normalise_audio(torch.from_numpy(np.asarray(audio, np.float32))).numpy()
        ka = keyframe_audio(a, np.arange(windows * T) * S, S)  # (W*T, S*Ca)
        ka = torch.from_numpy(np.concatenate([np.repeat(ka[:1], P, axis=0), ka]))  # lead-in: (P+W*T, S*Ca)
        emotion = torch.as_tensor(np.asarray(globals_["emotion"], np.float32)).view(1, 1, 2).expand(1, T, 2)
        g = self.normalise_globals({k: torch.as_tensor(np.asarray(globals_[k], np.float32))[None]
                                    for k in KEY_GLOBALS})
        D = per_condition(self.key, cfg["guidance"] if guidance is None else guidance)
        sigmas = karras_sigmas(steps or cfg["steps"])
        out, prev = [], None
        for w in range(windows):
            values = {AUDIO: ka[w * T:(w + 1) * T + P][None], EMOTION: emotion, **g}  # KeyFace Eq. 2: per frame
            if prev is not None:
                values[PREFIX] = prev[:, -P:]  # the previous window's last keyframes anchor this one
            x = seeded_noise((T, MOTION_DIM), [seed * SEED_STRIDE + w]) * sigmas[0]
            prev = sample_euler(D, x, sigmas, Cond.of(**values)).float()  # (1, T, C)
            out.append(prev[0])
        return torch.cat(out)[:n]

    def _interpolate(self, keys: torch.Tensor, audio: np.ndarray, seed: int, steps: int | None) -> torch.Tensor:
        """All S-1 frame gaps between consecutive keyframes in one batch (KeyFace §3.3)."""
        cfg, S = self.config, self.config["stride"]
        n = len(keys)
        if n < 2:
            return keys
        a = self.normalise_audio(torch.from_numpy(np.asarray(audio, np.float32))).numpy()
        gaps_audio = torch.from_numpy(gap_audio(a, np.arange(n - 1) * S, S + 1, interp_audio_context(cfg)))
        given = torch.zeros(n - 1, S + 1, MOTION_DIM)
        given[:, 0], given[:, -1] = keys[:-1], keys[1:]
        mask = torch.zeros(n - 1, S + 1, 1)
        mask[:, 0] = mask[:, -1] = 1.0
        cond = Cond.of(**{AUDIO: gaps_audio, GIVEN: given, MASK: mask})
        sigmas = karras_sigmas(steps or cfg["interp_steps"])
        x = seeded_noise((S + 1, MOTION_DIM), [seed * SEED_STRIDE + GAP_SEED_OFFSET + j for j in range(n - 1)])
        gaps = sample_euler(self.interp_guided(), x * sigmas[0], sigmas, cond).float()  # (n-1, S+1, C)
        return torch.cat([gaps[:, :S].reshape(-1, MOTION_DIM), keys[-1:]])  # ((n-1)*S+1, C)

