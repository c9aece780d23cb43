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
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import safetensors
import safetensors.torch
from torch import nn

from avatar.errors import AvatarError

FORMAT = "avatar-diffusion-checkpoint"
FORMAT_VERSION = 1
# Modules whose classes register themselves on import; loaded before a lookup.
BUILTIN_MODULES = ("avatar.diffusion.edm", "avatar.diffusion.transformer")
TRUSTED_PACKAGE = "avatar."

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
    # The defining module registers the class when imported; only avatar's own modules are
    # imported from a checkpoint's metadata.
    module = spec.get("module", "")
    for name in BUILTIN_MODULES + ((module,) if module.startswith(TRUSTED_PACKAGE) else ()):
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
    return {**spec, "extra": extra}


def load_model(path: str | os.PathLike, device: str = "cpu", expect: type | None = None) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights; returned in eval mode.

    ``expect``: the class the caller needs; AvatarError if the file holds another model.
    """
    spec = read_spec(path)
    try:
        model = build_model(spec)
    except (TypeError, KeyError, ValueError) as e:
        raise AvatarError(f"checkpoint config does not fit this version of the model ({e})",
                          str(path)) from None
    if expect is not None and not isinstance(model, expect):
        raise AvatarError(f"checkpoint holds the model {type(model).__name__}, not {expect.__name__}", str(path),
                          f"use a checkpoint of a {expect.__name__} model")
    try:
        safetensors.torch.load_model(model, str(path), strict=True, device=device)
    except Exception as e:
        raise AvatarError(f"checkpoint weights do not load ({e})", str(path),
                          "the file is corrupt or from another model version") from None
    return model.to(device).eval()
