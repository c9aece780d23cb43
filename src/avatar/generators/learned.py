"""What every checkpoint-driven generator shares: load, check, run, retime.

A learned generator's model (an ``nn.Module`` registered with
:func:`avatar.diffusion.checkpoint.register_model`) implements

    model.generate(audio (T, Ca), globals_ {name: (Cg,)}, seed, steps, guidance) -> (T, C)

on frames at ``model.config["fps"]``, and may define ``model.audio_input(speech, features)
-> (T, Ca)`` when it needs more than :func:`~avatar.generators.motion_vector.audio_frames`.
:class:`LearnedGenerator` does the rest: it loads the checkpoint (the file alone rebuilds
the model), checks its kind, resamples to and from the model's frame rate, redraws the
model's blinks in a believable shape (:func:`~avatar.generators.eyes.reshape_blinks`) and
applies the head-motion control.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from avatar.audio.types import AudioFeatures, Speech
from avatar.errors import AvatarError
from avatar.generators.base import Controls
from avatar.generators.eyes import reshape_blinks
from avatar.generators.motion_vector import (MOTION_DIM, action_channels, array_to_motion, audio_frames,
                                             global_conditions, group_slices, retime)
from avatar.motion.types import BLINK_ACTIONS, MotionSeq

BLINK_STREAM = 1  # random stream of the blink redraw, apart from the model's own noise


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, stamp: tuple[int, int]):
    from avatar.diffusion.checkpoint import load_model

    return load_model(path)


def loaded_model(checkpoint):
    """The checkpoint's model, loaded once per process while the file is unchanged (a batch
    worker or a server runs many jobs with one checkpoint; generating never changes it)."""
    path = Path(checkpoint)
    try:
        stat = path.stat()
    except OSError:  # missing or unreadable: load_model says so in its own words
        from avatar.diffusion.checkpoint import load_model

        return load_model(checkpoint)
    return _cached_model(str(path.resolve()), (stat.st_mtime_ns, stat.st_size))


class LearnedGenerator:
    """Speech -> motion with a trained checkpoint of the model kind ``name``."""

    name = ""

    def __init__(self, checkpoint=None, steps: int | None = None, guidance: dict | None = None):
        if checkpoint is None:
            raise AvatarError(f"the {self.name} generator needs a trained checkpoint", "--checkpoint",
                              f"train one with: avatar train --method {self.name} --data DATASET "
                              f"-o {self.name}.safetensors")
        self.model = loaded_model(checkpoint)
        if getattr(self.model, "kind", None) != self.name:
            raise AvatarError(f"not a {self.name} checkpoint (it holds a {getattr(self.model, 'kind', '?')} model)",
                              str(checkpoint), f"pass a checkpoint made by avatar train --method {self.name}")
        self.steps = steps
        self.guidance = guidance

    def generate(self, speech: Speech, features: AudioFeatures, controls: Controls = Controls(),
                 seed: int = 0) -> MotionSeq:
        model_fps = self.model.config["fps"]
        make_audio = getattr(self.model, "audio_input", None)
        audio = make_audio(speech, features) if make_audio else audio_frames(features)  # (T, Ca)
        audio = retime(audio, features.fps, model_fps)  # (T', Ca)
        x = self.model.generate(audio, global_conditions(controls.gaze, controls.head_distance,
                                                         controls.valence, controls.arousal),
                                seed=seed, steps=self.steps, guidance=self.guidance)  # (T', C)
        x = retime(x, model_fps, features.fps, features.num_frames)  # (T, C)
        blink = action_channels(BLINK_ACTIONS)
        x[:, blink] = reshape_blinks(np.random.default_rng([seed, BLINK_STREAM]), x[:, blink], features.fps)
        for group in ("rotation", "translation"):
            x[:, group_slices()[group]] *= controls.head_motion
        x[:, MOTION_DIM:] *= controls.head_motion  # upper-body motion (vlogger), if any: it follows the head
        return array_to_motion(x, features.fps, controls.head_distance)
