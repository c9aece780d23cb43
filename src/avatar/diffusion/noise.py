"""Per-sample seeded noise: a sample's noise depends on its own seed only.

Drawing one (B, ...) tensor from one generator makes sample i depend on the batch size
and on its position in the batch. Here every sample owns a generator, so the same seed
gives the same sample alone or in any batch, and the sampler's stochastic steps draw
from the same per-sample generators (:meth:`PerSampleNoise.randn_like`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


class PerSampleNoise:
    """One torch.Generator per sample; draws (B, *shape) with row i from generator i."""

    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(s) for s in seeds]
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape_per_sample: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal noise, (B, *shape_per_sample)."""
        return torch.stack([torch.randn(tuple(shape_per_sample), generator=g, dtype=dtype)
                            for g in self.generators])

    def randn_like(self, x: Tensor) -> Tensor:
        """Standard normal noise shaped like ``x`` (B, ...), drawn per sample in float32."""
        if x.shape[0] != len(self):
            raise ValueError(f"batch of {x.shape[0]} samples but {len(self)} seeds")
        return self.randn(x.shape[1:]).to(dtype=x.dtype, device=x.device)


def seeded_noise(shape_per_sample: Sequence[int], seeds: Sequence[int],
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """(len(seeds), *shape_per_sample) standard normal noise, sample i from seeds[i] alone."""
    return PerSampleNoise(seeds).randn(shape_per_sample, dtype)
