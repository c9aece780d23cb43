"""Subcommands that live in their own module: each has ``add_parser(sub)`` and ``run(args)``."""

import argparse
import math
import sys

MAX_SEED = 2**32 - 1  # numpy and torch both take seeds up to here
# Frame rates offered: below 1 fps there is no lip motion to see; above 120 players drop
# frames (and the rendering time grows for nothing).
FPS_RANGE = (1.0, 120.0)


def add_quiet_and_debug(p: argparse.ArgumentParser) -> None:
    """-q and --debug on a subcommand (--debug is also accepted before the subcommand)."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and native logs on errors")


def stderr_log(quiet: bool):
    """The commands' progress messages: ``avatar: ...`` on stderr, or nothing with -q."""
    return (lambda msg: None) if quiet else (lambda msg: print(f"avatar: {msg}", file=sys.stderr))


def number(kind, low: float | None = None, high: float | None = None, positive: bool = False):
    """An argparse type: a finite ``kind`` (int or float) in [low, high], > 0 if ``positive``;
    anything else is refused with one line saying what is expected."""
    noun = "a whole number" if kind is int else "a number"

    def parse(value: str):
        try:
            v = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {value!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected {noun}, got {value!r}")
        if positive and v <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
        if (low is not None and v < low) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"{_range(low, high)}, got {value}")
        return v

    return parse


def _range(low, high) -> str:
    def show(v) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)  # 4294967295, not 4.29497e+09

    if high is None:
        return f"must be at least {show(low)}"
    if low is None:
        return f"must be at most {show(high)}"
    return f"must be between {show(low)} and {show(high)}"


seed = number(int, 0, MAX_SEED)
