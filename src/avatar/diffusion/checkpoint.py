"""Checkpoints that carry their config: a model is rebuilt from the file alone.

A checkpoint is a safetensors file: the model's state_dict as tensors, and in the
metadata (string -> string) a JSON *spec* ``{"kind": ..., "config": {...}}``. ``kind``
names a class in a small registry; classes join it with ``@register_model("kind")`` and
implement ``to_config() -> dict`` (JSON-serialisable) and ``from_config(dict)``. Wrappers
nest specs (``EDMPrecond``'s config holds its network's spec), see :func:`model_spec`.
Writes are atomic (temporary file + os.replace), so a crash never leaves half a file.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import safetensors
import safetensors.torch
import torch
from torch import nn

from avatar.errors import AvatarError

FORMAT = "avatar-diffusion-checkpoint"
FORMAT_VERSION = 1
# Modules whose classes register themselves on import; loaded before a lookup.
BUILTIN_MODULES = ("avatar.diffusion.edm", "avatar.diffusion.transformer")
# The only modules a checkpoint's metadata may have imported: those defining models. A
# file naming any other module (avatar's or not) imports nothing, so loading one never
# runs code it chose.
MODEL_MODULES = BUILTIN_MODULES + (
    "avatar.generators.keyface_model", "avatar.generators.loopy_model", "avatar.generators.vasa_model",
    "avatar.generators.vlogger_model", "avatar.gesture.aumoclip", "avatar.metrics.capp")

MAX_DETAIL = 300  # characters of a library's error message quoted in ours
_REGISTRY: dict[str, type] = {}
M = TypeVar("M", bound=type)


def register_model(kind: str) -> Callable[[M], M]:
    """Class decorator: make ``kind`` name this class in checkpoints."""

    def decorate(cls: M) -> M:
        known = _REGISTRY.get(kind)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"model kind {kind!r} already names {known.__qualname__}")
        _REGISTRY[kind] = cls
        cls.kind = kind
        return cls

    return decorate


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"kind": ..., "config": ...}`` of a registered model."""
    kind = getattr(type(model), "kind", None)
    if kind is None or _REGISTRY.get(kind) is not type(model):
        raise TypeError(f"{type(model).__qualname__} is not a registered model (use @register_model)")
    return {"kind": kind, "module": type(model).__module__, "config": model.to_config()}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """A fresh (untrained) model from its spec."""
    # The defining module registers the class when imported; only known model modules are
    # imported from a checkpoint's metadata.
    module = spec.get("module", "")
    for name in BUILTIN_MODULES + ((module,) if module in MODEL_MODULES else ()):
        importlib.import_module(name)
    cls = _REGISTRY.get(spec.get("kind"))
    if cls is None:
        raise AvatarError(f"unknown model kind {spec.get('kind')!r}", None,
                          f"known kinds: {', '.join(sorted(_REGISTRY))}")
    return cls.from_config(spec["config"])


def save_model(path: str | os.PathLike, model: nn.Module, extra: dict | None = None) -> Path:
    """Write ``model`` (weights + spec, plus JSON ``extra`` such as the training step)."""
    path = Path(path)
    metadata = {
        "format": FORMAT,
        "version": str(FORMAT_VERSION),
        "spec": json.dumps(model_spec(model)),
        "extra": json.dumps(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        safetensors.torch.save_model(model, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """``{"kind", "config", "extra"}`` of a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise AvatarError("checkpoint not found", str(path), "check the path, or train the model first")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise AvatarError(f"not a readable safetensors file ({e})", str(path),
                          "the file is corrupt or truncated; re-download or re-train it") from None
    if metadata.get("format") != FORMAT:
        raise AvatarError("not an avatar diffusion checkpoint (no model spec in its metadata)", str(path),
                          "give a checkpoint written by avatar train")
    if not metadata.get("version", "").isdigit() or int(metadata["version"]) > FORMAT_VERSION:
        raise AvatarError(f"checkpoint format version {metadata.get('version')!r} is not readable "
                          f"by this avatar (reads up to {FORMAT_VERSION})", str(path), "upgrade avatar")
    try:
        spec = json.loads(metadata["spec"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise AvatarError(f"checkpoint metadata is damaged ({e})", str(path), "train the model again") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict) or not isinstance(extra, dict):
        raise AvatarError("checkpoint metadata is damaged (its spec is not a JSON object with a config)",
                          str(path), "train the model again")
    return {**spec, "extra": extra}


# What a model's constructor raises for a config of the wrong keys, types or values
# (torch: RuntimeError for negative sizes; AttributeError for a list where a dict belongs;
# ArithmeticError for sizes of 0 or too large to compute with).
CONFIG_ERRORS = (TypeError, KeyError, ValueError, AttributeError, IndexError, RuntimeError, ArithmeticError)


def _check_size(spec: dict[str, Any], path: Path) -> None:
    """ValueError if the config describes more weights than the file holds: the model is
    built before its weights load, so a few bytes of JSON could otherwise ask for GBs.
    The model is built on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        model = build_model(spec)
    state = model.state_dict()
    needed = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for name, b in model.named_buffers() if name in state)
    with safetensors.safe_open(str(path), framework="pt") as f:
        stored = sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    if needed > stored:
        raise ValueError(f"the config describes {needed} weights but the file holds {stored}")


def load_model(path: str | os.PathLike, device: str = "cpu", expect: type | None = None) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights; returned in eval mode.

    ``expect``: the class the caller needs; AvatarError if the file holds another model.
    """
    spec = read_spec(path)
    try:
        _check_size(spec, path)
        model = build_model(spec)
    except CONFIG_ERRORS as e:
        raise AvatarError(f"checkpoint config does not fit this version of the model ({e.__class__.__name__}: {e})",
                          str(path), "use a checkpoint written by this version of avatar train") from None
    if expect is not None and not isinstance(model, expect):
        raise AvatarError(f"checkpoint holds the model {type(model).__name__}, not {expect.__name__}", str(path),
                          f"use a checkpoint of a {expect.__name__} model")
    try:
        safetensors.torch.load_model(model, str(path), strict=True, device=device)
    except Exception as e:
        # torch lists every missing key on its own line: one line, shortened, for the CLI
        detail = " ".join(str(e).split())
        raise AvatarError(f"checkpoint weights do not load ({detail[:MAX_DETAIL]})", str(path),
                          "the file is corrupt or from another model version") from None
    return model.to(device).eval()
