"""The one table of motion generators: the CLI, the API, ``avatar evaluate`` and the
benchmarks all read it. Adding a generator means one row here and its own modules.

Entries name their classes and training functions as ``"module:attribute"`` strings that
are imported only when used, so listing the generators imports none of them (and no
generator module imports this one).

A trainer is ``train(clips, out_path, settings: TrainSettings, log) -> TrainReport``
(see :mod:`avatar.training.loop`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from avatar.errors import AvatarError


@dataclass(frozen=True)
class GeneratorEntry:
    name: str
    summary: str  # one line for --help
    factory: str  # "module:Class"; Class(**options) is a MotionGenerator
    trainer: str | None = None  # "module:function" for `avatar train --method NAME`
    needs_checkpoint: bool = False
    steps: int = 5000  # default training steps (each default trains within 30 min on 2 cores)
    untrained: str | None = None  # "module:function" -> a default-size untrained model (for timing)
    fine_tunes: bool = False  # its trainer can start from a trained checkpoint (avatar train --init)


GENERATORS: dict[str, GeneratorEntry] = {e.name: e for e in (
    GeneratorEntry("rules", "phone timings, prosody and hand-written rules (no training)",
                   "avatar.generators.rules:RulesGenerator"),
    GeneratorEntry("vasa", "VASA-1 motion diffusion in sliding windows",
                   "avatar.generators.vasa:VasaGenerator", "avatar.training.vasa:train_vasa", True,
                   untrained="avatar.generators.vasa:untrained"),
    GeneratorEntry("keyface", "KeyFace keyframes at 5 fps + autoguided interpolation, speech and sound audio",
                   "avatar.generators.keyface:KeyFaceGenerator", "avatar.training.keyface:train_keyface", True,
                   steps=4000, untrained="avatar.generators.keyface:untrained"),
    GeneratorEntry("loopy", "Loopy clips with 5 s of compressed motion context and audio-to-latents",
                   "avatar.generators.loopy:LoopyGenerator", "avatar.training.loopy:train_loopy", True,
                   steps=5000, untrained="avatar.generators.loopy:untrained"),
    GeneratorEntry("vlogger", "VLOGGER causal diffusion of face, head and upper body, temporal outpainting",
                   "avatar.generators.vlogger:VloggerGenerator", "avatar.training.vlogger:train_vlogger", True,
                   steps=5000, untrained="avatar.generators.vlogger:untrained", fine_tunes=True),
)}


def _load(target: str):
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def entry(name: str) -> GeneratorEntry:
    try:
        return GENERATORS[name]
    except KeyError:
        raise AvatarError(f"unknown motion generator {name!r}", "--motion",
                          f"available: {', '.join(GENERATORS)}") from None


def get_generator(name: str, **options):
    """The named generator; ``options`` are its constructor arguments (learned ones:
    ``checkpoint``, ``steps``, ``guidance``)."""
    return _load(entry(name).factory)(**options)


def untrained_model(name: str):
    """A default-size untrained model of a learned generator (the same computation as a
    trained one: benchmarks time it without a checkpoint)."""
    return _load(entry(name).untrained)()


def trainable() -> list[str]:
    """Names of the generators ``avatar train`` can train."""
    return [e.name for e in GENERATORS.values() if e.trainer]


def trainer(name: str):
    """The training function of a learned generator."""
    e = entry(name)
    if e.trainer is None:
        raise AvatarError(f"the {name} generator is not trained", "--method", f"trainable: {', '.join(trainable())}")
    return _load(e.trainer)
