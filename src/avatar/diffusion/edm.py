"""EDM preconditioning and training loss.

Karras, Aittala, Aila, Laine 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models" (EDM), Table 1 and Eq. 7-8. A raw network ``F(x_in, c_noise, cond)``
becomes the denoiser

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))

which predicts the clean sample x0 (as VLOGGER and KeyFace do), and is trained with

    E_{sigma, n} [ lambda(sigma) || D(x0 + sigma n; sigma) - x0 ||^2 ],
    ln(sigma) ~ N(P_mean, P_std^2).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as Fn
from torch import Tensor, nn

from avatar.diffusion.checkpoint import build_model, model_spec, register_model
from avatar.diffusion.conditions import Cond

SIGMA_DATA = 0.5  # std of the training data (EDM default); normalise motion features to it
P_MEAN = -1.2  # training noise levels: ln(sigma) ~ N(P_MEAN, P_STD^2)  (EDM Table 1)
P_STD = 1.2
NOISE_LOG_SCALE = 0.25  # c_noise = NOISE_LOG_SCALE * ln(sigma)  (EDM Table 1)

Denoiser = Callable[[Tensor, Tensor, "Cond | None"], Tensor]  # D(x, sigma, cond) -> x0


def edm_scalings(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) at ``sigma`` (any shape), EDM Table 1."""
    s2, d2 = sigma**2, sigma_data**2
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1.0 / (s2 + d2).sqrt()
    c_noise = NOISE_LOG_SCALE * sigma.log()
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2  (EDM Table 1).

    Equal to 1 / c_out^2, so the weighted loss is the unit-variance loss of F itself.
    """
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def per_sample_sigma(sigma: Tensor | float, batch: int) -> Tensor:
    """``sigma`` as a float32 (B,) tensor (a float or 0-d tensor is broadcast)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    return sigma.expand(batch) if sigma.dim() == 0 else sigma.reshape(batch).float()


@register_model("edm")
class EDMPrecond(nn.Module):
    """Wrap a raw network F(x_in (B,T,C), c_noise (B,), cond) -> (B,T,C) into D(x, sigma, cond) -> x0."""

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Cond | None = None) -> Tensor:
        x = x.float()  # (B, T, C)
        sigma = per_sample_sigma(sigma, x.shape[0]).to(x.device)  # (B,)
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma.view(-1, 1, 1), self.sigma_data)  # (B, 1, 1)
        f = self.net(c_in * x, c_noise.flatten(), cond)  # (B, T, C)
        return c_skip * x + c_out * f

    def to_config(self) -> dict:
        return {"sigma_data": self.sigma_data, "net": model_spec(self.net)}

    @classmethod
    def from_config(cls, config: dict) -> "EDMPrecond":
        return cls(build_model(config["net"]), config["sigma_data"])


@register_model("x0")
class X0Precond(EDMPrecond):
    """Wrap F into a denoiser that predicts x0 directly: D(x, sigma, cond) = sigma_data F(c_in x, c_noise, cond).

    EDM's preconditioning with c_skip = 0 and c_out = sigma_data: the network's own output
    is the clean sample, as in VLOGGER (§3.1: the diffusion network predicts x0, not the
    noise). Train it with ``edm_loss(..., sigma_weighting=False)``: the plain
    ||D(x0 + sigma n) - x0||^2 of VLOGGER's L_diff (EDM's lambda(sigma) ~ 1/sigma^2 at low
    noise would charge the network's imperfect copy of its input there).
    """

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Cond | None = None) -> Tensor:
        x = x.float()  # (B, T, C)
        sigma = per_sample_sigma(sigma, x.shape[0]).to(x.device)  # (B,)
        _, _, c_in, c_noise = edm_scalings(sigma.view(-1, 1, 1), self.sigma_data)  # (B, 1, 1)
        return self.sigma_data * self.net(c_in * x, c_noise.flatten(), cond)  # (B, T, C)


def edm_loss(
    D: Denoiser,
    x0: Tensor,
    cond: Cond | None = None,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    sigma: Tensor | None = None,
    P_mean: float = P_MEAN,
    P_std: float = P_STD,
    sigma_data: float | None = None,
    weight: Tensor | float | None = None,
    temporal_weight: Tensor | float | None = None,
    sigma_weighting: bool = True,
) -> Tensor:
    """Per-element EDM loss, (B, T, C); take ``.mean()`` (or a masked mean) to train.

    loss = lambda(sigma) * weight * (x0_hat - x0)^2
         + lambda(sigma) * temporal_weight * (diff_t x0_hat - diff_t x0)^2

    - ``x0`` (B, T, C) clean motion; ``x0_hat = D(x0 + sigma n, sigma, cond)``.
    - ``sigma`` (B,) defaults to log-normal draws exp(P_mean + P_std * N(0,1)) and ``noise``
      (B, T, C) to standard normal draws, both from ``generator`` (sigma first).
    - ``weight`` broadcasts against (B, T, C): a (C,) tensor weights channels (KeyFace's
      lambda_lower = 3 on mouth channels); a (B, T, 1) mask ignores padded frames.
    - ``temporal_weight`` (None = off) adds VLOGGER's temporal loss with per-channel weights
      lambda_temp (e.g. larger for head pose than for expression). The difference between
      frames t-1 and t is charged to frame t; frame 0 gets no temporal term. It carries the
      same lambda(sigma) so both terms stay on one scale at every noise level.
    - ``sigma_data`` defaults to ``D.sigma_data`` (else SIGMA_DATA).
    - ``sigma_weighting=False`` drops lambda(sigma) (weight 1 at every noise level), for
      denoisers that predict x0 directly (:class:`X0Precond`).
    """
    B = x0.shape[0]
    if sigma_data is None:
        sigma_data = getattr(D, "sigma_data", SIGMA_DATA)
    if sigma is None:
        sigma = (P_mean + P_std * torch.randn(B, generator=generator)).exp().to(x0.device)  # (B,)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)  # (B, T, C)
    sigma3 = sigma.reshape(B, 1, 1).to(x0.dtype)
    err = D(x0 + sigma3 * noise, sigma, cond) - x0  # (B, T, C)
    lam = loss_weight(sigma3, sigma_data) if sigma_weighting else torch.ones_like(sigma3)  # (B, 1, 1)
    loss = lam * err**2 * (1.0 if weight is None else weight)
    if temporal_weight is not None:
        # diff(x0_hat) - diff(x0) == diff(x0_hat - x0); pad frame 0 with no term.
        temporal = Fn.pad(err.diff(dim=1) ** 2, (0, 0, 1, 0))  # (B, T, C)
        loss = loss + lam * temporal_weight * temporal
    return loss
