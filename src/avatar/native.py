"""Native libraries' settings: quiet logs (MediaPipe's C++ core writes to file descriptor 2
directly) and torch's thread count for small models."""

from __future__ import annotations

import contextlib
import os
import sys

# Set by the CLI's --debug: keep native logs visible.
VERBOSE_ENV = "AVATAR_DEBUG"


@contextlib.contextmanager
def quiet_stderr():
    """Silence fd 2 (C/C++ logs included) for the duration, unless AVATAR_DEBUG is set."""
    if os.environ.get(VERBOSE_ENV):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some notebooks): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads, then restore the previous number.

    Small models run fastest (and reproducibly) on one thread on a shared 2-core machine.
    """
    import torch  # deferred: only the learning code needs it

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
