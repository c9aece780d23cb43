"""Subcommands that live in their own module: each has ``add_parser(sub)`` and ``run(args)``."""

import argparse
import sys


def add_quiet_and_debug(p: argparse.ArgumentParser) -> None:
    """-q and --debug on a subcommand (--debug is also accepted before the subcommand)."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and native logs on errors")


def stderr_log(quiet: bool):
    """The commands' progress messages: ``avatar: ...`` on stderr, or nothing with -q."""
    return (lambda msg: None) if quiet else (lambda msg: print(f"avatar: {msg}", file=sys.stderr))
