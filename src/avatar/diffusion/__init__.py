"""Diffusion in motion space: one denoiser contract, EDM preconditioning, plain samplers.

Every diffusion model in the engine is a *denoiser* ``D(x, sigma, cond) -> x0``:

- ``x``     (B, T, C) noisy motion, float32;
- ``sigma`` (B,) noise level per sample (a Python float or 0-d tensor is broadcast);
- ``cond``  a :class:`Cond` of named condition groups (or None), each with a per-sample
  "present" flag, so classifier-free guidance can drop any group;
- returns the estimate of the clean motion ``x0``, (B, T, C).

Modules (read in this order):

- :mod:`.conditions`  ``Cond``: named condition tensors + per-sample presence flags.
- :mod:`.edm`         ``EDMPrecond`` (Karras et al. 2022, Table 1) and ``edm_loss``.
- :mod:`.samplers`    ``karras_sigmas``, ``sample_euler``, ``sample_heun``.
- :mod:`.guidance`    ``Guided`` (CFG and autoguidance are one wrapper), ``Dropped``,
  ``per_condition``, ``dropout_conditions``.
- :mod:`.noise`       per-sample seeded noise, so a sample never depends on its batch.
- :mod:`.checkpoint`  safetensors checkpoints that carry their config; ``load_model``.
- :mod:`.transformer` ``MotionTransformer``: a small temporal transformer backbone F.

This package needs ``torch`` and ``safetensors`` (the optional ``learn`` extra); nothing
outside ``avatar.diffusion`` imports it.
"""

from avatar.diffusion.checkpoint import load_model, read_spec, register_model, save_model
from avatar.diffusion.conditions import Cond
from avatar.diffusion.edm import EDMPrecond, edm_loss, edm_scalings, loss_weight
from avatar.diffusion.guidance import Dropped, Guided, dropout_conditions, per_condition
from avatar.diffusion.noise import PerSampleNoise, seeded_noise
from avatar.diffusion.samplers import karras_sigmas, sample_euler, sample_heun
from avatar.diffusion.transformer import MotionTransformer, MotionTransformerConfig

__all__ = [
    "Cond",
    "Dropped",
    "EDMPrecond",
    "Guided",
    "MotionTransformer",
    "MotionTransformerConfig",
    "PerSampleNoise",
    "dropout_conditions",
    "edm_loss",
    "edm_scalings",
    "karras_sigmas",
    "load_model",
    "loss_weight",
    "per_condition",
    "read_spec",
    "register_model",
    "sample_euler",
    "sample_heun",
    "save_model",
    "seeded_noise",
]
