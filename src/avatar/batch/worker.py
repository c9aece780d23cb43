"""What a batch worker runs for one job: the job's own command, quietly, in this process.

A worker process runs many jobs one after another, so the engine's models (face
landmarker, voice, recogniser, aligner, learned generators) are loaded by its first job
and reused by the next ones (their loaders cache them per process).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from avatar.batch.jobs import Job
from avatar.batch.manifest import DONE, FAILED
from avatar.commands import dub as dub_command
from avatar.commands import speak as speak_command
from avatar.errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, AvatarError
from avatar.native import native_logs_hidden


_jobs_run = 0  # jobs this worker process has run: >1 means its models were already loaded


@dataclass(frozen=True)
class JobOutcome:
    """What became of one attempt at a job, as the worker saw it."""

    status: str  # DONE or FAILED
    seconds: float
    worker: str  # host:pid
    worker_jobs: int  # this was the worker's n-th job
    error: str | None = None
    exit_code: int = 0


def run_job(job: Job) -> JobOutcome:
    """Run one job; its failure is an outcome, never an exception (a bad job fails alone)."""
    global _jobs_run
    _jobs_run += 1
    started = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def outcome(status: str, error: str | None = None, code: int = 0) -> JobOutcome:
        return JobOutcome(status, time.perf_counter() - started, worker, _jobs_run, error, code)

    try:
        args = job.parse()
        with native_logs_hidden():
            (dub_command if args.command == "dub" else speak_command).run(args)
    except AvatarError as e:
        return outcome(FAILED, e.one_line(), EXIT_USER_ERROR)
    except Exception as e:  # our bug, reported with the job rather than stopping the batch
        return outcome(FAILED, f"internal error: {e.__class__.__name__}: {e}", EXIT_INTERNAL_ERROR)
    return outcome(DONE)
