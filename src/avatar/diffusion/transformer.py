"""A small temporal transformer: the raw network F of a motion denoiser.

F(x_in, c_noise, cond) -> (B, T, C), to be wrapped by :class:`~avatar.diffusion.edm.EDMPrecond`.
Tokens are motion frames. Conditions (all optional, all droppable per sample):

- per-frame conditions ``cond[name]`` (B, T, C_name), e.g. audio features: projected and
  added to the frame tokens; given for K + T frames (B, K+T, C_name), their first K frames
  go to the prefix tokens (VASA-1 conditions on the previous window's audio as well);
- global conditions ``cond[name]`` (B, C_name), e.g. gaze, head distance, emotion:
  projected and added to the noise embedding (as KeyFace adds audio/emotion to the
  timestep embedding), which is added to every token;
- per-frame embedding conditions ``cond[name]`` (B, T, C_name), e.g. valence/arousal per
  frame: each channel sinusoidally embedded, mapped by an MLP and added to the noise
  embedding of that frame (KeyFace Eq. 2: emotion joins the timestep embedding);
- ``cond["prefix"]`` (B, K, C): the previous window's last K motion frames (VASA-1),
  prepended as K clean tokens at frame positions -K..-1.

An absent condition is replaced by its learned null embedding (the null convention of
:mod:`avatar.diffusion.conditions`); the absent prefix by K copies of a learned
"missing frame" token (KeyFace's z_m). Blocks are pre-norm; ``causal`` lets each frame
attend only to itself and earlier frames (VLOGGER).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as Fn
from torch import Tensor, nn

from avatar.diffusion.checkpoint import register_model
from avatar.diffusion.conditions import Cond

PREFIX = "prefix"  # the condition name of the previous-window motion frames
MAX_PERIOD = 10000.0  # longest period of the sinusoidal embeddings (Vaswani et al. 2017)
# c_noise = ln(sigma)/4 spans about -2..1 over the sampling grid; scaled so the sinusoidal
# embedding sees the range of DDPM-style step indices it was designed for.
NOISE_EMB_SCALE = 250.0
EMBED_COND_SCALE = 250.0  # the same for per-frame embedding conditions in about [-1, 1]


@dataclass
class MotionTransformerConfig:
    motion_dim: int  # C: channels of one motion frame
    frame_conds: dict[str, int] = field(default_factory=dict)  # name -> channels, (B, T, Ca)
    global_conds: dict[str, int] = field(default_factory=dict)  # name -> channels, (B, Cg)
    embed_conds: dict[str, int] = field(default_factory=dict)  # name -> channels, (B, T, Ce), sinusoidal
    prefix_frames: int = 0  # K: previous-window frames in cond["prefix"], (B, K, C)
    width: int = 128  # D: token width
    depth: int = 4  # number of blocks
    heads: int = 4
    mlp_ratio: int = 4
    causal: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        names = list(self.frame_conds) + list(self.global_conds) + list(self.embed_conds)
        if len(set(names)) != len(names) or PREFIX in names or any("." in n for n in names):
            raise ValueError(f"condition names must be unique, without '.', not {PREFIX!r}: {names}")
        if self.heads < 1 or self.width % (2 * self.heads):
            raise ValueError(f"width {self.width} must be even and divisible by heads {self.heads}")


def sinusoidal(t: Tensor, dim: int) -> Tensor:
    """(N,) positions -> (N, dim) [cos | sin] features with periods up to MAX_PERIOD."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, device=t.device) / half)  # (half,)
    angles = t.float()[:, None] * freqs[None]  # (N, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)


def _sinusoidal_channels(v: Tensor, dim: int) -> Tensor:
    """(B, T, C) values -> (B, T, C*dim): each channel's sinusoidal features, concatenated."""
    B, T, C = v.shape
    return sinusoidal(EMBED_COND_SCALE * v.reshape(-1), dim).view(B, T, C * dim)


class SelfAttention(nn.Module):
    def __init__(self, cfg: MotionTransformerConfig):
        super().__init__()
        self.heads, self.causal, self.dropout = cfg.heads, cfg.causal, cfg.dropout
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, h: Tensor) -> Tensor:
        B, L, D = h.shape
        q, k, v = self.qkv(h).split(D, dim=2)  # 3 x (B, L, D)
        q, k, v = (t.view(B, L, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, D/H)
        y = Fn.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                            dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


class Block(nn.Module):
    """Pre-norm transformer block: h + attn(norm(h)), then h + mlp(norm(h))."""

    def __init__(self, cfg: MotionTransformerConfig):
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.width
        self.norm1 = nn.LayerNorm(cfg.width)
        self.attn = SelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, hidden), nn.GELU(), nn.Linear(hidden, cfg.width),
                                 nn.Dropout(cfg.dropout))

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))


@register_model("motion_transformer")
class MotionTransformer(nn.Module):
    """F(x_in (B,T,C), c_noise (B,), cond) -> (B,T,C)."""

    def __init__(self, config: MotionTransformerConfig):
        super().__init__()
        self.config = cfg = config
        D = cfg.width
        self.in_proj = nn.Linear(cfg.motion_dim, D)
        self.noise_mlp = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.frame_proj = nn.ModuleDict({n: nn.Linear(c, D) for n, c in cfg.frame_conds.items()})
        self.frame_null = nn.ParameterDict({n: nn.Parameter(torch.zeros(D)) for n in cfg.frame_conds})
        self.global_proj = nn.ModuleDict({n: nn.Linear(c, D) for n, c in cfg.global_conds.items()})
        self.global_null = nn.ParameterDict({n: nn.Parameter(torch.zeros(D)) for n in cfg.global_conds})
        half = D // 2
        self.embed_mlp = nn.ModuleDict({n: nn.Sequential(nn.Linear(c * half, D), nn.SiLU(), nn.Linear(D, D))
                                        for n, c in cfg.embed_conds.items()})
        self.embed_null = nn.ParameterDict({n: nn.Parameter(torch.zeros(D)) for n in cfg.embed_conds})
        if cfg.prefix_frames:
            self.prefix_proj = nn.Linear(cfg.motion_dim, D)
            self.prefix_null = nn.Parameter(torch.zeros(D))  # the learned "missing frame" token
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(D)
        self.out_proj = nn.Linear(D, cfg.motion_dim)
        nn.init.zeros_(self.out_proj.weight)  # F = 0 at init, so D(x) = c_skip x: a stable start
        nn.init.zeros_(self.out_proj.bias)

    @staticmethod
    def _embed(proj: nn.Module, null: Tensor, cond: Cond, name: str, B: int) -> Tensor:
        """proj(cond[name]) where the condition is present, else the null embedding."""
        if name not in cond:
            return null  # (D,), broadcasts
        e = proj(cond[name])  # (B, ..., D)
        keep = cond.present[name].view(B, *([1] * (e.dim() - 1)))
        return torch.where(keep, e, null)

    def forward(self, x: Tensor, c_noise: Tensor, cond: Cond | None = None) -> Tensor:
        cfg, (B, T, _) = self.config, x.shape
        K = cfg.prefix_frames
        cond = Cond({}) if cond is None else cond
        h = self.in_proj(x)  # (B, T, D)
        if K:
            prefix = self._embed(self.prefix_proj, self.prefix_null, cond, PREFIX, B)  # (B, K, D) or (D,)
            h = torch.cat([prefix.expand(B, K, cfg.width), h], dim=1)  # (B, K+T, D)
        for name, proj in self.frame_proj.items():
            null = self.frame_null[name]
            e = self._embed(proj, null, cond, name, B)  # (B, T or K+T, D) or (D,)
            if K and e.dim() == 3 and e.shape[1] == T:  # nothing given for the prefix frames
                e = torch.cat([null.expand(B, K, cfg.width), e], dim=1)  # (B, K+T, D)
            h = h + e  # (B, K+T, D)
        emb = self.noise_mlp(sinusoidal(NOISE_EMB_SCALE * c_noise, cfg.width))  # (B, D)
        for name, proj in self.global_proj.items():
            emb = emb + self._embed(proj, self.global_null[name], cond, name, B)  # (B, D)
        emb = emb[:, None]  # (B, 1, D)
        for name, mlp in self.embed_mlp.items():
            e = self._embed(lambda v, m=mlp: m(_sinusoidal_channels(v, cfg.width // 2)), self.embed_null[name],
                            cond, name, B)  # (B, T, D) or (D,)
            if e.dim() == 3 and K:  # the prefix frames carry the null embedding
                e = torch.cat([self.embed_null[name].expand(B, K, cfg.width), e], dim=1)
            emb = emb + e  # (B, K+T, D)
        positions = torch.arange(-K, T, device=x.device)  # prefix frames come before frame 0
        h = h + sinusoidal(positions, cfg.width)[None] + emb  # (B, K+T, D)
        for block in self.blocks:
            h = block(h)
        return self.out_proj(self.norm_out(h[:, K:]))  # (B, T, C)

    def to_config(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_config(cls, config: dict) -> "MotionTransformer":
        return cls(MotionTransformerConfig(**config))
