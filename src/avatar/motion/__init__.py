"""The motion space every generator writes and every renderer reads."""

from avatar.motion.types import ACTIONS, ACTION_INDEX, MotionFrame, MotionSeq

__all__ = ["ACTIONS", "ACTION_INDEX", "MotionFrame", "MotionSeq"]
