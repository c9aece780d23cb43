"""Motion generators: speech (+ controls) -> MotionSeq. ``get_generator(name)`` picks one."""

from avatar.generators.base import EMOTIONS, Controls, MotionGenerator
from avatar.generators.registry import GENERATORS, get_generator

__all__ = ["Controls", "EMOTIONS", "GENERATORS", "MotionGenerator", "get_generator"]
