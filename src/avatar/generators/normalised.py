"""What the torch models of the learned generators share: normalisation and sampling threads.

Each model (vasa, keyface, loopy) standardises motion and audio per channel with
statistics learnt from its training data and divides global conditions by fixed scales.
The statistics are buffers, so they are saved with the weights and come back with
``load_model`` (the buffer names are part of the checkpoint format: keep them).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from avatar.generators.motion_vector import MOTION_DIM

# Sampling runs one small window at a time: more threads only add synchronisation, and on
# a busy machine oversubscribed threads made it 15x slower (measured with vasa).
SAMPLING_THREADS = 1


class NormalisedModel(nn.Module):
    """An ``nn.Module`` with a config dict and per-channel motion / audio statistics."""

    def __init__(self, config: dict, audio_channels: int, mean=None, std=None, audio_mean=None, audio_std=None,
                 motion_channels: int = MOTION_DIM):
        super().__init__()
        self.config = dict(config)
        self.register_buffer("mean", as_vector(mean, motion_channels, 0.0))
        self.register_buffer("std", as_vector(std, motion_channels, 1.0))
        self.register_buffer("audio_mean", as_vector(audio_mean, audio_channels, 0.0))
        self.register_buffer("audio_std", as_vector(audio_std, audio_channels, 1.0))

    # -- checkpoint protocol -------------------------------------------------------------
    def to_config(self) -> dict:
        return self.config

    @classmethod
    def from_config(cls, config: dict):
        return cls(config)  # statistics are buffers: they come back with the weights

    # -- normalisation -------------------------------------------------------------------
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def normalise_audio(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.audio_mean) / self.audio_std

    def normalise_globals(self, values: dict) -> dict:
        """Global conditions divided by their scales (checkpoints from before the scales
        existed were trained on raw values: scale 1)."""
        scales = self.config.get("global_scales", {})
        return {k: v / scales.get(k, 1.0) for k, v in values.items()}


@contextmanager
def sampling_threads():
    """Inference mode with SAMPLING_THREADS torch threads, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(SAMPLING_THREADS)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(threads)


def as_vector(values, n: int, fill: float) -> torch.Tensor:
    if values is None:
        return torch.full((n,), fill, dtype=torch.float32)
    return torch.as_tensor(np.asarray(values, np.float32).reshape(n))


def pad_to(a: np.ndarray, n: int) -> np.ndarray:
    """Repeat the last row so ``a`` has ``n`` rows (or cut it to ``n``)."""
    if len(a) >= n:
        return np.ascontiguousarray(a[:n], dtype=np.float32)
    return np.concatenate([a, np.repeat(a[-1:], n - len(a), axis=0)]).astype(np.float32)


def pad_edges(a: np.ndarray, k: int) -> np.ndarray:
    """``a`` (T, Ca) with its first and last rows repeated k times: the audio beyond each
    side that a frame's +-k audio context reads."""
    return np.concatenate([np.repeat(a[:1], k, 0), a, np.repeat(a[-1:], k, 0)])


def stack_audio(a: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T + 2k, Ca) audio -> (B, T, (2k+1) Ca): frame t with its k neighbours on each side."""
    return a.unfold(1, 2 * k + 1, 1).transpose(2, 3).flatten(2)
