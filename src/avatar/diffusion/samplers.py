"""Samplers: plain functions with one signature (the k-diffusion convention).

    sample_x(D, x, sigmas, cond=None, callback=None, *, churn=0.0, noise=None) -> x0

- ``D`` is a denoiser D(x, sigma (B,), cond) -> x0 (EDMPrecond, Guided, ...);
- ``x`` (B, T, C) is the initial noise ALREADY scaled by ``sigmas[0]``;
- ``sigmas`` is a decreasing float64 grid ending in 0 (:func:`karras_sigmas`).

They integrate the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (EDM Eq. 3
with sigma(t) = t, s(t) = 1). Following NVlabs edm, the state and the sigma grid are kept
in float64 and only the network runs in float32. ``churn`` > 0 turns on EDM's stochastic
step (Algorithm 2, S_churn), drawing from the per-sample generators of ``noise``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import Denoiser
from avatar.diffusion.noise import PerSampleNoise

SIGMA_MIN = 0.002  # EDM Table 1 sampling defaults
SIGMA_MAX = 80.0
RHO = 7.0  # EDM Eq. 5: rho = 7 spends more steps at low noise
MAX_CHURN_GAMMA = math.sqrt(2.0) - 1.0  # EDM Algorithm 2: gamma <= sqrt(2) - 1

Callback = Callable[[dict], None]  # receives {"i", "x", "sigma", "denoised"}


def karras_sigmas(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> Tensor:
    """n noise levels sigma_max .. sigma_min spaced as EDM Eq. 5, then 0: (n + 1,) float64.

    sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
    """
    if n < 1:
        raise ValueError(f"need at least one step, got n={n}")
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _denoise(D: Denoiser, x: Tensor, sigma: Tensor, cond: Cond | None) -> Tensor:
    """D at a float64 state: the network sees float32 x and a (B,) float32 sigma."""
    s_in = torch.full((x.shape[0],), float(sigma), dtype=torch.float32, device=x.device)
    return D(x.float(), s_in, cond).double()


def _churn(x: Tensor, sigma: Tensor, churn: float, n: int,
           noise: PerSampleNoise | None) -> tuple[Tensor, Tensor]:
    """EDM Algorithm 2, lines 4-6: raise sigma to sigma_hat = (1 + gamma) sigma, add noise."""
    gamma = min(churn / n, MAX_CHURN_GAMMA)
    if gamma <= 0.0:
        return x, sigma
    if noise is None:
        raise ValueError("churn > 0 needs per-sample noise: pass noise=PerSampleNoise(seeds)")
    sigma_hat = sigma * (1.0 + gamma)
    return x + (sigma_hat**2 - sigma**2).sqrt() * noise.randn_like(x).double(), sigma_hat


def sample_euler(D: Denoiser, x: Tensor, sigmas: Tensor, cond: Cond | None = None,
                 callback: Callback | None = None, *, churn: float = 0.0,
                 noise: PerSampleNoise | None = None) -> Tensor:
    """Euler steps of the probability-flow ODE (one D call per step)."""
    return _integrate(D, x, sigmas, cond, callback, churn, noise, heun=False)


def sample_heun(D: Denoiser, x: Tensor, sigmas: Tensor, cond: Cond | None = None,
                callback: Callback | None = None, *, churn: float = 0.0,
                noise: PerSampleNoise | None = None) -> Tensor:
    """Heun's 2nd-order method (EDM Algorithm 1/2): an Euler step, then a trapezoidal
    correction, except for the last step to sigma = 0, which is plain Euler."""
    return _integrate(D, x, sigmas, cond, callback, churn, noise, heun=True)


def _integrate(D, x, sigmas, cond, callback, churn, noise, heun: bool) -> Tensor:
    """The shared loop of both samplers: state and sigmas in float64, D in float32."""
    out_dtype, x, sigmas = x.dtype, x.double(), sigmas.double()
    n = len(sigmas) - 1
    for i in range(n):
        sigma_next = sigmas[i + 1]
        x, sigma = _churn(x, sigmas[i], churn, n, noise)
        denoised = _denoise(D, x, sigma, cond)  # (B, T, C)
        d = (x - denoised) / sigma  # dx/dsigma
        x_next = x + (sigma_next - sigma) * d
        if heun and sigma_next > 0:
            d_next = (x_next - _denoise(D, x_next, sigma_next, cond)) / sigma_next
            x_next = x + (sigma_next - sigma) * 0.5 * (d + d_next)
        x = x_next
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})
    return x.to(out_dtype)
