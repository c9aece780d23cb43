"""Guidance: classifier-free guidance and autoguidance are ONE wrapper, ``Guided``.

    D_w(x) = D_ref(x) + w (D(x) - D_ref(x))        (NVlabs edm2: ``ref.lerp(D, w)``)

- Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance"):
  ``ref`` is the same model with conditions dropped, ``Dropped(D, ["audio"])``; the model
  learns both by :func:`dropout_conditions` during training.
- Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of
  itself", Eq. 2): ``ref`` is a weaker model (smaller / less trained) with the same
  conditions. KeyFace guides its interpolation model this way.

Per-condition guidance (VASA-1 guides audio, gaze, emotion ... each with its own scale)
uses several terms, each with its own reference and weight:

    D_w(x) = D(x) + sum_i (w_i - 1) (D(x) - D_ref_i(x))

which for one term is exactly the formula above; :func:`per_condition` builds it with
``ref_i = Dropped(D, group_i)``. w = 1 means "no guidance": such terms are skipped, so
``Guided`` with every w = 1 returns D(x) bit for bit (and torch.lerp(a, b, 1) == b too).
Since a Guided is itself a denoiser, wrappers nest (e.g. autoguidance inside CFG).

``sigma_range=(lo, hi)`` guides only for lo < sigma <= hi and returns D(x) elsewhere
(Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves sample and
distribution quality in diffusion models", §3): guidance at high noise mostly narrows the
distribution, at low noise it does nothing useful, and each unguided step costs one
network call instead of two.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import Denoiser

NO_GUIDANCE = 1.0  # a guidance weight of 1 returns the guided model's own output


class Dropped:
    """The denoiser ``D`` with the named condition groups absent (the CFG reference)."""

    def __init__(self, D: Denoiser, names: Iterable[str]):
        self.D = D
        self.names = tuple(names)

    def __call__(self, x: Tensor, sigma: Tensor, cond: Cond | None = None) -> Tensor:
        if cond is None:
            return self.D(x, sigma, cond)
        return self.D(x, sigma, cond.drop(*self.names))


class Guided:
    """D guided away from reference denoiser(s).

    ``Guided(D, ref, w)`` for one reference (CFG or autoguidance); for several (per-condition
    guidance) ``Guided(D, guides=[(ref_1, w_1), (ref_2, w_2)])``.
    """

    def __init__(self, D: Denoiser, ref: Denoiser | None = None, w: float = NO_GUIDANCE, *,
                 guides: Sequence[tuple[Denoiser, float]] = (),
                 sigma_range: tuple[float, float] | None = None):
        self.D = D
        self.guides = [(ref, float(w))] if ref is not None else []
        self.guides += [(r, float(wi)) for r, wi in guides]
        self.sigma_range = sigma_range

    def _in_range(self, x: Tensor, sigma) -> Tensor | None:
        """(B,) bool: samples whose sigma lies in ``sigma_range``; None = every sample."""
        if self.sigma_range is None:
            return None
        lo, hi = self.sigma_range
        s = torch.as_tensor(sigma, dtype=torch.float64).flatten().expand(x.shape[0])  # (B,)
        return (s > lo) & (s <= hi)

    def __call__(self, x: Tensor, sigma: Tensor, cond: Cond | None = None) -> Tensor:
        active = [(ref, w) for ref, w in self.guides if w != NO_GUIDANCE]
        inside = self._in_range(x, sigma)
        if inside is not None and not bool(inside.any()):
            return self.D(x, sigma, cond)  # outside the interval: one call, unguided
        if cond is not None and active and all(isinstance(r, Dropped) and r.D is self.D for r, _ in active):
            out, *refs = self._one_batch(x, sigma, cond, [r.names for r, _ in active])
        else:
            out = self.D(x, sigma, cond)  # (B, T, C)
            refs = [ref(x, sigma, cond) for ref, _ in active]
        if not active:
            return out
        if len(active) == 1:  # the edm2 form, ref.lerp(D, w)
            guided = torch.lerp(refs[0], out, active[0][1])
        else:
            guided = out
            for ref_out, (_, w) in zip(refs, active):
                guided = guided + (w - 1.0) * (out - ref_out)
        if inside is None:
            return guided
        return torch.where(inside.view(-1, *([1] * (x.dim() - 1))), guided, out)

    def _one_batch(self, x: Tensor, sigma: Tensor, cond: Cond, dropped: list[tuple[str, ...]]):
        """D on the conditional batch and every dropped variant at once: one network call
        instead of 1 + len(dropped), the same results up to float rounding."""
        n, B = 1 + len(dropped), x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(B)  # (B,)
        cond_all = Cond.cat([cond] + [cond.drop(*names) for names in dropped])
        out = self.D(x.repeat(n, *([1] * (x.dim() - 1))), sigma.repeat(n), cond_all)  # (n*B, T, C)
        return out.chunk(n)


def per_condition(D: Denoiser, weights: Mapping[str | tuple[str, ...], float],
                  sigma_range: tuple[float, float] | None = None) -> Guided:
    """Classifier-free guidance per condition group: ``{"audio": 2.0, "gaze": 1.5}``.

    A key may be a tuple of names to guide a group jointly, e.g. ``{("gaze", "emotion"): 2}``.
    ``sigma_range`` limits guidance to an interval of noise levels (see the module docstring).
    """
    guides = []
    for names, w in weights.items():
        names = (names,) if isinstance(names, str) else tuple(names)
        guides.append((Dropped(D, names), w))
    return Guided(D, guides=guides, sigma_range=sigma_range)


def dropout_conditions(cond: Cond, p: float | Mapping[str, float],
                       generator: torch.Generator | None = None) -> Cond:
    """Training-time condition dropout: each group absent per sample with probability p.

    ``p`` is one probability for every group, or a mapping name -> probability (groups
    not named are never dropped). Groups are visited in sorted order, one (B,) draw each,
    so a seeded ``generator`` gives reproducible masks.
    """
    B = cond.batch_size
    if B is None:
        return cond
    probs = dict.fromkeys(cond.keys(), p) if not isinstance(p, Mapping) else dict(p)
    unknown = set(probs) - set(cond.keys())
    if unknown:
        raise KeyError(f"dropout for unknown conditions {sorted(unknown)}; known: {sorted(cond.keys())}")
    for name in sorted(probs):
        drop = torch.rand(B, generator=generator) < probs[name]  # (B,)
        cond = cond.with_present(name, cond.present[name] & ~drop.to(cond.present[name].device))
    return cond
