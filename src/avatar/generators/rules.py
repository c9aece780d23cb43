"""The default motion generator: hand-written rules from phonetics and prosody research.

speech + features + controls -> MotionSeq, deterministic for a given seed:

- mouth: phones -> visemes -> coarticulated mouth actions (Cohen & Massaro 1993 dominance
  model, must-hit lip closure on p/b/m and lip-to-teeth on f/v), jaw scaled by loudness,
  gated by the VAD so silence, music and laughter without phones leave the mouth at rest
  (avatar.generators.lips, avatar.generators.visemes);
- head: F0 contour and emphasis nods + smooth random motion (avatar.generators.head);
- eyes: blinks and gaze fixations/saccades/thinking glances (avatar.generators.eyes);
- expression: valence/arousal and emphasis on brows, smile, lids
  (avatar.generators.expression).

Each part draws from its own random stream derived from the seed, so changing one part
never changes the others' randomness.
"""

from __future__ import annotations

import math

import numpy as np

from avatar.audio.types import AudioFeatures, Speech
from avatar.errors import AvatarError
from avatar.generators import eyes
from avatar.generators.base import Controls
from avatar.generators.expression import expression
from avatar.generators.head import head_pose
from avatar.generators.lips import mouth_motion
from avatar.generators.prosody import analyse
from avatar.generators.signals import moving_average
from avatar.generators.visemes import viseme_track
from avatar.motion.types import MotionSeq

STREAMS = ("head", "blink", "gaze", "expression")  # one random stream per part, in this order
WIDE_RELAX_S = 0.12  # eyeWide eases off around a blink over this time (s)


def _random_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for each part, all derived from ``seed``."""
    seq = np.random.SeedSequence(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    children = seq.spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def check_controls(controls: Controls) -> Controls:
    """Reject controls a user cannot mean; clamp valence/arousal to [-1, 1]."""
    values = (controls.valence, controls.arousal, controls.head_motion, controls.head_distance,
              *controls.gaze)
    if not all(math.isfinite(float(v)) for v in values):
        raise AvatarError("controls must be finite numbers", "controls",
                          "check --valence/--arousal/--head-motion/--gaze/--head-distance")
    if controls.head_motion < 0:
        raise AvatarError(f"head motion {controls.head_motion} is negative", "--head-motion",
                          "use 0 for a still head, 1 for normal motion")
    if controls.head_distance <= 0:
        raise AvatarError(f"head distance {controls.head_distance} is not positive",
                          "--head-distance", "use 1 for the photo's size, >1 closer")
    return Controls(valence=float(np.clip(controls.valence, -1, 1)),
                    arousal=float(np.clip(controls.arousal, -1, 1)),
                    head_motion=float(controls.head_motion),
                    gaze=(float(controls.gaze[0]), float(controls.gaze[1])),
                    head_distance=float(controls.head_distance))


def check_features(features: AudioFeatures) -> None:
    """Every per-frame feature must have num_frames rows and fps must be positive."""
    T = features.num_frames
    for name in ("pitch", "onset", "vad", "mel"):
        if len(getattr(features, name)) != T:
            raise ValueError(f"AudioFeatures.{name} has {len(getattr(features, name))} frames, "
                             f"energy has {T}")
    if not features.fps > 0:
        raise ValueError(f"AudioFeatures.fps must be positive, got {features.fps}")


class RulesGenerator:
    """Rule-based motion: visemes + coarticulation, prosodic head motion, blinks, gaze, emotion."""

    name = "rules"

    def generate(self, speech: Speech, features: AudioFeatures, controls: Controls,
                 seed: int = 0) -> MotionSeq:
        """Motion for ``features.num_frames`` frames at ``features.fps``."""
        check_features(features)
        controls = check_controls(controls)
        T, fps = features.num_frames, float(features.fps)
        seq = MotionSeq.neutral(T, fps)
        if T == 0:
            return seq
        rng = _random_streams(seed)
        track = viseme_track(speech.phones, T / fps) if speech.phones else None
        prosody = analyse(track, features)
        mouth = mouth_motion(track, features, controls.arousal)  # {name: (T,)}
        pose = head_pose(prosody, controls, fps, rng["head"])
        blinks = eyes.blink_events(rng["blink"], prosody, fps, controls.arousal)
        lids = eyes.render_blinks(blinks, T, fps)  # (T, 2) left, right
        face = expression(prosody, controls, mouth, fps, rng["expression"])  # {name: (T,)}
        for name, curve in {**mouth, **face}.items():
            seq.set_action(name, np.clip(curve, 0.0, 1.0))
        seq.set_action("eyeBlinkL", lids[:, 0])
        seq.set_action("eyeBlinkR", lids[:, 1])
        # lids cannot be wide open while blinking; eased over a few frames so it never pops
        relax = 1.0 - moving_average(lids.max(axis=1), max(1, round(WIDE_RELAX_S * fps)))  # (T,)
        for side in "LR":
            seq.set_action("eyeWide" + side, seq.action("eyeWide" + side) * relax)
        seq.rotation[:] = pose.rotation
        seq.translation[:] = pose.translation
        seq.scale[:] = pose.scale
        seq.gaze[:] = eyes.gaze_track(rng["gaze"], prosody, controls.gaze, pose.rotation, fps)
        return seq
