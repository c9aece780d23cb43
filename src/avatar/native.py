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
def native_logs_hidden():
    """For a whole command: what native code writes to fd 2 goes to /dev/null, while
    Python's ``sys.stderr`` (our messages, progress bars) still reaches the terminal.

    :func:`quiet_stderr` around each native call is not enough: MediaPipe's worker threads
    log after the call has returned (a race), so a stray C++ line could follow an error.
    """
    sys.stderr.flush()
    try:
        python_fd, saved = sys.stderr.fileno(), os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real fd 2 (captured, notebooks): nothing to separate
        python_fd = saved = None
    if saved is None:
        yield
        return
    previous, own = sys.stderr, None
    if python_fd == 2:  # Python writes where native code does: give it its own copy of fd 2
        own = os.fdopen(os.dup(saved), "w", buffering=1, encoding=previous.encoding, errors="backslashreplace")
        sys.stderr = own
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        if own is not None:
            sys.stderr = previous
            own.close()
        os.dup2(saved, 2)
        os.close(saved)


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
