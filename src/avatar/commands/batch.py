"""``avatar batch JOBS.jsonl [--workers N] [--ray auto|ADDRESS]``."""

from __future__ import annotations

import argparse
from contextlib import closing

from avatar.commands import add_quiet_and_debug, number, stderr_log

MAX_RETRIES = 10


def add_parser(sub) -> None:
    p = sub.add_parser(
        "batch", help="make many videos: one speak or dub job a line of a JSONL file, locally or on Ray",
        description="Run every job of JOBS.jsonl: one JSON object a line with the fields of `avatar speak` "
                    "or `avatar dub` (option names without the dashes, plus \"output\"; \"command\": \"dub\" "
                    "or a \"video\" field makes it a dub). Paths are relative to the jobs file's folder; "
                    "output folders are created. Jobs run on a pool of local worker processes, or on a "
                    "Ray cluster with --ray. A job whose worker dies is retried; a bad job fails alone "
                    "with its reason. Every job's status, output, time and error go to the manifest "
                    "(JOBS.manifest.jsonl); running again skips the jobs that are done.",
        epilog='Example JOBS.jsonl:\n'
               '  {"image": "anna.jpg", "text": "Welcome back, Anna!", "emotion": "happy", "output": "out/anna.mp4"}\n'
               '  {"image": "ben.png", "audio": "ben.wav", "seed": 3, "output": "out/ben.mp4"}\n'
               '  {"video": "talk.mp4", "audio": "talk_fr.wav", "output": "out/talk_fr.mp4"}\n\n'
               'Examples:\n  avatar batch jobs.jsonl --workers 2\n'
               '  avatar batch jobs.jsonl --ray auto          # the Ray cluster this machine is part of\n'
               '  avatar batch jobs.jsonl --ray 10.0.0.5:6379',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", metavar="JOBS.jsonl", help="the jobs, one JSON object a line")
    p.add_argument("--workers", type=number(int, 1, 256), metavar="N",
                   help="local worker processes (default: one per core); ignored with --ray")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: auto, or the head's HOST:PORT")
    p.add_argument("--retries", type=number(int, 0, MAX_RETRIES), default=2, metavar="K",
                   help="times a job is tried again when its worker dies (default 2)")
    p.add_argument("--manifest", metavar="FILE", help="the manifest to write (default JOBS.manifest.jsonl)")
    p.add_argument("--force", action="store_true", help="run every job again, even those that are done")
    add_quiet_and_debug(p)


def make_pool(ray: str | None, workers: int | None, retries: int):
    """The pool of ``--ray`` / ``--workers`` (shared with ``avatar prepare``)."""
    if ray:
        from avatar.batch.raypool import RayPool

        return RayPool(ray, retries=retries)
    from avatar.batch.pool import LocalPool, cpu_count

    return LocalPool(workers or cpu_count(), retries=retries)


def run(args: argparse.Namespace) -> int:
    from avatar.batch.run import run_batch

    log = stderr_log(args.quiet)
    with closing(make_pool(args.ray, args.workers, args.retries)) as pool:
        report = run_batch(args.jobs, pool, manifest=args.manifest, force=args.force,
                           progress=not args.quiet, log=log)
    done, failed = report.count("done"), report.count("failed")
    log(f"{done} done, {failed} failed of {len(report.records)} job(s) ({report.ran} run now) in "
        f"{report.seconds:.1f} s; manifest: {report.manifest}")
    return report.exit_code
