"""Writing files safely and reading the engine's ``.npz`` archives.

Every file the engine writes (videos aside, see avatar.video.writer) goes through
:func:`atomic_write`: a temp file next to the destination, renamed into place only when
complete, so an error or Ctrl-C never leaves a half-written file.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from avatar.errors import AvatarError

FILE_MODE = 0o666  # before the umask, as open() would create it
PARTIAL_SUFFIX = ".partial"


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, then rename it into place."""
    path = Path(path)
    if not path.parent.exists():
        raise AvatarError("folder does not exist", str(path.parent), "create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
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


# What numpy and zipfile raise for a damaged, truncated or foreign .npz (ValueError also for
# pickled data, which is never loaded; NotImplementedError for an unknown zip compression).
ARCHIVE_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError)
# What turning well-formed arrays of the wrong dtype, shape or JSON type into objects raises
# (ArithmeticError: int() of an infinite JSON number, a size of 0 divided by).
CONTENT_ERRORS = (KeyError, ValueError, TypeError, IndexError, AttributeError, ArithmeticError)
MAX_CODE_POINT = 0x10FFFF
ZIP_ENCRYPTED = 0x1  # general-purpose flag bit of an encrypted zip member


def read_npz(path, names=None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (or those of ``names``), read now (a damaged member fails
    here, not on first use). Never unpickles; raises ARCHIVE_ERRORS for a file that is not
    a sound archive (KeyError for a missing name)."""
    archive = np.load(path, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):  # an .npy file gives its array
        raise ValueError("a single .npy array, not an .npz archive")
    with archive:
        return {name: _read_member(archive, name) for name in (archive.files if names is None else names)}


def _read_member(archive, name: str) -> np.ndarray:
    """One array, after checking that its header does not announce more data than the zip
    member holds (numpy allocates the announced size first: a tiny file could ask for GBs)."""
    if name + ".npy" not in archive.zip.namelist():  # np.load would hand back its raw bytes
        raise ValueError(f"entry {name!r} is not an array")
    member = archive.zip.getinfo(name + ".npy")
    if member.flag_bits & ZIP_ENCRYPTED:  # zipfile would ask for a password (RuntimeError)
        raise ValueError(f"array {name!r} is encrypted")
    with archive.zip.open(member) as f:
        version = np.lib.format.read_magic(f)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"array {name!r} has npy format version {version}, not one avatar writes")
        shape, _, dtype = readers[version](f)
    if np.prod(shape, dtype=np.float64) * dtype.itemsize > member.file_size:
        raise ValueError(f"array {name!r} announces more data than the file holds")
    array = archive[name]
    if _invalid_text(array):
        raise ValueError(f"array {name!r} holds invalid text")  # numpy itself fails on it later
    return array


def _invalid_text(array: np.ndarray) -> bool:
    """True for a unicode array with code points beyond U+10FFFF (numpy raises SystemError
    converting those)."""
    if array.dtype.kind != "U" or not array.size:
        return False
    code_points = np.ascontiguousarray(array).reshape(-1).view(np.uint32)  # a view needs contiguous data
    return bool(code_points.max() > MAX_CODE_POINT)


def partials_of(path) -> list[Path]:
    """The temp files of :func:`atomic_write` for ``path`` that a killed process left."""
    path = Path(path)
    return list(path.parent.glob(f".{glob.escape(path.name)}.*{PARTIAL_SUFFIX}"))


def open_archive(path, fmt: str, version: int, what: str, meta_only: bool = False):
    """(arrays, meta) of an ``.npz`` archive with a JSON ``meta`` entry whose ``format`` is
    ``fmt`` and ``version`` at most ``version``; AvatarError naming ``what`` otherwise.
    ``arrays`` is a dict, every array already read (only ``meta`` if ``meta_only``)."""
    path = Path(path)
    try:
        data = read_npz(path, ["meta"] if meta_only else None)
        meta = json.loads(str(data["meta"]))
    except ARCHIVE_ERRORS as e:
        raise AvatarError(f"not an avatar {what} file, or a damaged one ({e.__class__.__name__})", str(path),
                          f"use an undamaged {what} file written by avatar") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise AvatarError(f"not an avatar {what} file", str(path), f"use a {what} file written by avatar")
    found = meta.get("version")
    if not isinstance(found, int) or isinstance(found, bool) or found > version:
        raise AvatarError(f"{what} format version {found!r} is not one this avatar reads (up to {version})",
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
