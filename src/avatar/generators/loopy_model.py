"""The torch side of the ``loopy`` generator: the clip denoiser and what it needs to run alone.

A :class:`LoopyModel` holds the EDM-preconditioned :class:`LoopyNet`, the per-channel
normalisation learnt from the training data and the settings; ``load_model(path)``
rebuilds it from the file alone. Conditions of the denoiser D(x, sigma, cond) -> x0 on a
clip x (B, N, C):

- ``audio`` (B, N + 2k, Ca): the clip's audio frames and k more on each side;
- ``context`` (B, L, C) with ``context_frames`` (B, L) (1 = a real frame): the L motion
  frames before the clip, oldest first, compressed by the temporal segment module;
- ``signals`` (B, N, 3), training only: motion signals of the real clip that query the
  audio-to-latents bank instead of audio where present;
- ``gaze``, ``distance``, ``emotion`` (B, Cg): global, as vasa.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import Tensor, nn

from avatar.diffusion.checkpoint import register_model
from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import EDMPrecond
from avatar.diffusion.guidance import per_condition
from avatar.diffusion.noise import seeded_noise
from avatar.diffusion.samplers import karras_sigmas, sample_euler
from avatar.diffusion.transformer import (NOISE_EMB_SCALE, MotionTransformer, MotionTransformerConfig, SelfAttention,
                                          sinusoidal)
from avatar.generators.motion_vector import (AUDIO, GLOBAL_CONDS, MOTION_DIM, MOUTH_ACTIONS, action_channels,
                                             audio_dim, group_slices)
from avatar.generators.normalised import NormalisedModel, pad_edges, pad_to, sampling_threads, stack_audio

CONTEXT, CONTEXT_FRAMES, SIGNALS = "context", "context_frames", "signals"
SIGNAL_NAMES = ("mouth_speed", "head_variance", "expression_variance")  # Loopy §3.3's motion features
SIGNAL_WINDOW = 5  # frames over which the head / expression variances are taken
SEED_STRIDE = 100_003  # clip w of seed s draws its noise from seed s * SEED_STRIDE + w
_embed = MotionTransformer._embed  # proj(cond[name]) where present, else the null embedding


def segment_spans(segments: int, tokens: int, ratio: int) -> list[tuple[int, int, int]]:
    """(first, last, segment) frame offsets (-1: the frame just before the clip) of each
    context token, nearest first: token i of segment j stands for r^j frames (Loopy §3.2,
    temporal segment module, s tokens per segment, stride ratio r)."""
    spans, start = [], 0
    for j in range(segments):
        width = ratio**j
        spans += [(-(start + (i + 1) * width), -(start + i * width) - 1, j) for i in range(tokens)]
        start += tokens * width
    return spans


def context_length(config: dict) -> int:
    """L: motion frames before the clip that the context tokens cover."""
    return -segment_spans(used_segments(config), config["segment_tokens"], config["segment_ratio"])[-1][0]


def used_segments(config: dict) -> int:
    return config["segments"] if config["long_context"] else 1


def pooling_matrix(config: dict) -> np.ndarray:
    """(tokens, L) one-hot rows: token t is the first (oldest) frame of its span, context
    index L + offset. Loopy §3.2 found uniform sampling inside segments better than
    pooling; taking the oldest frame lets the context reach the full L frames back."""
    spans = segment_spans(used_segments(config), config["segment_tokens"], config["segment_ratio"])
    L = -spans[-1][0]
    P = np.zeros((len(spans), L), np.float32)
    for t, (first, _, _) in enumerate(spans):
        P[t, L + first] = 1.0
    return P


def motion_signals(x: Tensor) -> Tensor:
    """(B, N, 3) motion signals of normalised motion (B, N, C): mouth-motion speed, and the
    variance over SIGNAL_WINDOW frames of head rotation and of expression (Loopy §3.3)."""
    mouth = x[..., action_channels(MOUTH_ACTIONS)]
    speed = Fn.pad(mouth.diff(dim=1).abs().mean(2), (1, 0), mode="replicate")  # (B, N)
    slices = group_slices()
    return torch.log1p(torch.stack([speed, _rolling_var(x[..., slices["rotation"]]),
                                    _rolling_var(x[..., slices["actions"]])], dim=2))


def _rolling_var(x: Tensor) -> Tensor:
    """(B, N) channel-mean variance over SIGNAL_WINDOW frames centred on each frame."""
    h = SIGNAL_WINDOW // 2
    xt = Fn.pad(x.transpose(1, 2), (h, h), mode="replicate")  # (B, C, N + 2h)
    mean = Fn.avg_pool1d(xt, SIGNAL_WINDOW, 1)
    return (Fn.avg_pool1d(xt**2, SIGNAL_WINDOW, 1) - mean**2).clamp(min=0).mean(1)


class AudioToLatents(nn.Module):
    """Loopy §3.3: per-frame queries (from audio, or in training from motion signals) read
    a bank of learnable latents; the result joins the timestep embedding."""

    def __init__(self, audio_channels: int, width: int, latents: int):
        super().__init__()
        self.bank = nn.Parameter(torch.randn(latents, width) * width**-0.5)  # (M, D)
        self.query_audio = nn.Linear(audio_channels, width)
        self.query_motion = nn.Linear(len(SIGNAL_NAMES), width)
        self.key, self.value, self.out = (nn.Linear(width, width) for _ in range(3))
        self.null = nn.Parameter(torch.zeros(width))  # no audio (classifier-free guidance)

    def forward(self, audio: Tensor | None, cond: Cond, B: int) -> Tensor:
        if audio is None:
            return self.null
        q = self.query_audio(audio)  # (B, N, D)
        if SIGNALS in cond:
            use = cond.present[SIGNALS].view(B, 1, 1)
            q = torch.where(use, self.query_motion(cond[SIGNALS]), q)
        weights = torch.softmax(q @ self.key(self.bank).T / math.sqrt(q.shape[-1]), dim=-1)  # (B, N, M)
        z = self.out(weights @ self.value(self.bank))  # (B, N, D)
        return torch.where(cond.present[AUDIO].view(B, 1, 1), z, self.null)


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, N, D) over keys/values (B, M, D) with scaled dot
    product attention; the parameters are named and laid out as in nn.MultiheadAttention
    (packed in_proj_weight/bias, out_proj), which costs more Python per call."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, q: Tensor, kv: Tensor) -> Tensor:
        (B, N, D), M, H = q.shape, kv.shape[1], self.heads
        w, b = self.in_proj_weight, self.in_proj_bias
        q = Fn.linear(q, w[:D], b[:D]).view(B, N, H, D // H).transpose(1, 2)  # (B, H, N, D/H)
        k, v = Fn.linear(kv, w[D:], b[D:]).view(B, M, 2, H, D // H).permute(2, 0, 3, 1, 4)  # 2 x (B, H, M, D/H)
        y = Fn.scaled_dot_product_attention(q, k, v)
        return self.out_proj(y.transpose(1, 2).reshape(B, N, D))


class LoopyBlock(nn.Module):
    """Intra-clip self-attention, inter-clip attention (queries: the clip; keys/values: the
    context tokens and the clip), MLP (Loopy §3.2). Pre-norm."""

    def __init__(self, cfg: MotionTransformerConfig):
        super().__init__()
        D = cfg.width
        self.norm1, self.norm2, self.norm_context, self.norm3 = (nn.LayerNorm(D) for _ in range(4))
        self.intra = SelfAttention(cfg)
        self.inter = CrossAttention(D, cfg.heads)
        self.mlp = nn.Sequential(nn.Linear(D, cfg.mlp_ratio * D), nn.GELU(), nn.Linear(cfg.mlp_ratio * D, D))

    def forward(self, h: Tensor, context: Tensor) -> Tensor:
        h = h + self.intra(self.norm1(h))  # (B, N, D)
        q = self.norm2(h)
        kv = torch.cat([self.norm_context(context), q], dim=1)  # (B, tokens + N, D)
        h = h + self.inter(q, kv)
        return h + self.mlp(self.norm3(h))


class LoopyNet(nn.Module):
    """F(x_in (B, N, C), c_noise (B,), cond) -> (B, N, C)."""

    def __init__(self, config: dict):
        super().__init__()
        D, C, k = config["width"], MOTION_DIM, config["audio_context"]
        stacked = (2 * k + 1) * audio_dim(config["n_mels"])
        cfg = MotionTransformerConfig(motion_dim=C, width=D, heads=config["heads"])
        self.audio_context = k
        self.in_proj = nn.Linear(C, D)
        self.audio_proj = nn.Linear(stacked, D)
        self.audio_null = nn.Parameter(torch.zeros(D))
        self.noise_mlp = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.global_proj = nn.ModuleDict({n: nn.Linear(c, D) for n, c in GLOBAL_CONDS.items()})
        self.global_null = nn.ParameterDict({n: nn.Parameter(torch.zeros(D)) for n in GLOBAL_CONDS})
        spans = segment_spans(used_segments(config), config["segment_tokens"], config["segment_ratio"])
        self.register_buffer("pool", torch.from_numpy(pooling_matrix(config)), persistent=False)  # (tokens, L)
        self.register_buffer("token_positions", torch.tensor([(a + b) / 2 for a, b, _ in spans]), persistent=False)
        self.register_buffer("token_segments", torch.tensor([j for _, _, j in spans]), persistent=False)
        self.context_proj = nn.Linear(C, D)
        self.context_missing = nn.Parameter(torch.zeros(D))  # a token whose frame is missing
        self.segment_embedding = nn.Embedding(used_segments(config), D)
        self.latents = AudioToLatents(stacked, D, config["latents"]) if config["audio_to_latents"] else None
        self.blocks = nn.ModuleList(LoopyBlock(cfg) for _ in range(config["depth"]))
        self.norm_out = nn.LayerNorm(D)
        self.out_proj = nn.Linear(D, C)
        nn.init.zeros_(self.out_proj.weight)  # F = 0 at init: D(x) = c_skip x, a stable start
        nn.init.zeros_(self.out_proj.bias)

    def context_tokens(self, cond: Cond, B: int) -> Tensor:
        """(B, tokens, D): the temporal segment module over the previous motion frames."""
        D = self.context_proj.out_features
        place = (sinusoidal(self.token_positions, D) + self.segment_embedding(self.token_segments))[None]
        if CONTEXT not in cond:
            return (self.context_missing + place).expand(B, -1, -1)
        sampled = self.pool @ cond[CONTEXT]  # (B, tokens, C)
        complete = (cond[CONTEXT_FRAMES] @ self.pool.T) > 0.5  # (B, tokens): its frame is real
        complete = complete & cond.present[CONTEXT][:, None]
        tokens = torch.where(complete[..., None], self.context_proj(sampled), self.context_missing)
        return tokens + place

    def forward(self, x: Tensor, c_noise: Tensor, cond: Cond | None = None) -> Tensor:
        B, N, _ = x.shape
        cond = Cond({}) if cond is None else cond
        audio = None
        if AUDIO in cond:
            k = self.audio_context
            audio = stack_audio(cond[AUDIO], k)  # (B, N, (2k+1) Ca)
        D = self.in_proj.out_features
        h = self.in_proj(x) + sinusoidal(torch.arange(N, device=x.device), D)[None]  # (B, N, D)
        if audio is not None:
            h = h + torch.where(cond.present[AUDIO].view(B, 1, 1), self.audio_proj(audio), self.audio_null)
        else:
            h = h + self.audio_null
        emb = self.noise_mlp(sinusoidal(NOISE_EMB_SCALE * c_noise, D))  # (B, D)
        for name, proj in self.global_proj.items():
            emb = emb + _embed(proj, self.global_null[name], cond, name, B)
        emb = emb[:, None]  # (B, 1, D)
        if self.latents is not None:
            emb = emb + self.latents(audio, cond, B)  # (B, N, D): Loopy §3.3
        h = h + emb
        context = self.context_tokens(cond, B)
        for block in self.blocks:
            h = block(h, context)
        return self.out_proj(self.norm_out(h))  # (B, N, C)


@register_model("loopy")
class LoopyModel(NormalisedModel):
    kind = "loopy"

    def __init__(self, config: dict, mean=None, std=None, audio_mean=None, audio_std=None):
        super().__init__(config, audio_dim(config["n_mels"]), mean, std, audio_mean, audio_std)
        self.denoiser = EDMPrecond(LoopyNet(self.config), sigma_data=config["sigma_data"])

    def forward(self, x, sigma, cond: Cond | None = None):
        """The denoiser D(x, sigma, cond) -> x0 on a normalised clip (B, N, C)."""
        return self.denoiser(x, sigma, cond)

    def generate(self, audio: np.ndarray, globals_: dict[str, np.ndarray], seed: int = 0,
                 steps: int | None = None, guidance: dict | None = None) -> np.ndarray:
        """(T, C) motion for (T, Ca) audio, clip by clip, each seeing the context of all
        that came before it."""
        with sampling_threads():
            return self._generate(audio, globals_, seed, steps, guidance)

    def _generate(self, audio, globals_, seed, steps, guidance) -> np.ndarray:
        cfg = self.config
        N, k, L = cfg["clip"], cfg["audio_context"], context_length(cfg)
        T = len(audio)
        W = -(-T // N)
        a = pad_to(audio, W * N)
        a = pad_edges(a, k)  # k frames beyond each side
        a = self.normalise_audio(torch.from_numpy(a))  # (W*N + 2k, Ca)
        g = self.normalise_globals({n: torch.from_numpy(np.asarray(v, np.float32))[None] for n, v in globals_.items()})
        interval = cfg.get("guidance_interval")  # absent in older checkpoints: guide every step
        D = per_condition(self, cfg["guidance"] if guidance is None else guidance,
                          sigma_range=tuple(interval) if interval else None)
        sigmas = karras_sigmas(steps or cfg["steps"])
        motion = torch.zeros(L + W * N, MOTION_DIM)  # normalised; the first L frames are "before the start"
        known = torch.zeros(L + W * N)
        for w in range(W):
            cond = Cond.of(**{AUDIO: a[w * N:(w + 1) * N + 2 * k][None], CONTEXT: motion[w * N:w * N + L][None],
                              CONTEXT_FRAMES: known[w * N:w * N + L][None]}, **g)
            x = seeded_noise((N, MOTION_DIM), [seed * SEED_STRIDE + w]) * sigmas[0]
            motion[L + w * N:L + (w + 1) * N] = sample_euler(D, x, sigmas, cond).float()[0]
            known[L + w * N:L + (w + 1) * N] = 1.0
        return self.denormalise(motion[L:L + T]).numpy()
