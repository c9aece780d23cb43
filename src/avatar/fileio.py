"""Writing files safely and reading the engine's ``.npz`` archives.

Every file the engine writes (videos aside, see avatar.video.writer) goes through
:func:`atomic_write`: a temp file next to the destination, renamed into place only when
complete, so an error or Ctrl-C never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from avatar.errors import AvatarError

FILE_MODE = 0o666  # before the umask, as open() would create it


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, then rename it into place."""
    path = Path(path)
    if not path.parent.exists():
        raise AvatarError("folder does not exist", str(path.parent), "create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, FILE_MODE & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_archive(path, fmt: str, version: int, what: str):
    """(arrays, meta) of an ``.npz`` archive with a JSON ``meta`` entry whose ``format`` is
    ``fmt`` and ``version`` at most ``version``; AvatarError naming ``what`` otherwise."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError) as e:
        raise AvatarError(f"not an avatar {what} file ({e.__class__.__name__})", str(path)) from None
    if meta.get("format") != fmt:
        raise AvatarError(f"not an avatar {what} file", str(path))
    if meta.get("version", version + 1) > version:
        raise AvatarError(f"{what} format version {meta.get('version')} is newer than this avatar reads",
                          str(path), "update avatar")
    return data, meta


def prefixed(prefix: str, values: dict) -> dict[str, np.ndarray]:
    """``values`` as arrays under ``prefix + key`` (several objects share one ``.npz``)."""
    return {prefix + key: np.asarray(value) for key, value in values.items()}


def prefixed_reader(arrays, prefix: str, keys, what: str, where: str):
    """A getter ``key -> array`` of ``arrays[prefix + key]`` (a dict or an open ``np.load``),
    after checking that every key is there (AvatarError naming the missing ones)."""
    missing = [prefix + k for k in keys if prefix + k not in arrays]
    if missing:
        raise AvatarError(f"{what} arrays are missing: {', '.join(missing)}", where,
                          "enroll the video again to rebuild them")
    return lambda key: np.asarray(arrays[prefix + key])
