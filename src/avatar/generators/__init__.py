"""Motion generators: speech (+ controls) -> MotionSeq. ``get_generator(name)`` picks one."""

from avatar.generators.base import EMOTIONS, Controls, MotionGenerator, get_generator

__all__ = ["Controls", "EMOTIONS", "MotionGenerator", "get_generator"]
