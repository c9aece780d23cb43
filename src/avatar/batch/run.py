"""``avatar batch``: run the jobs of a jobs file on a pool of workers, resumably.

The driver reads and checks every job first (an invalid line fails alone), skips the jobs
a previous run finished, hands the rest to the pool (local processes or a Ray cluster),
and records each job in the manifest the moment it ends. Outputs are written atomically by
the commands themselves; leftovers of an attempt whose worker died are removed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from avatar.batch.jobs import Job, read_jobs
from avatar.batch.manifest import DONE, FAILED, ManifestLog, is_done, manifest_path, read_manifest
from avatar.batch.pool import TaskDone
from avatar.batch.worker import JobOutcome, run_job
from avatar.errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, AvatarError
from avatar.fileio import partials_of as file_partials
from avatar.video.writer import partials_of as video_partials

Log = Callable[[str], None]


@dataclass
class BatchReport:
    manifest: Path
    records: list[dict]  # one per job, in the jobs file's order
    seconds: float
    ran: int  # jobs run now (the others were done before, or invalid)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.records)

    @property
    def exit_code(self) -> int:
        """0 if every job is done; 1 if one failed inside the engine; else 2 (bad jobs)."""
        codes = {r.get("exit_code", 0) for r in self.records if r["status"] != DONE}
        return EXIT_INTERNAL_ERROR if EXIT_INTERNAL_ERROR in codes else (EXIT_USER_ERROR if codes else 0)


def _record(job: Job, status: str, **fields) -> dict:
    return {"line": job.line, "id": job.id, "command": job.command, "output": str(job.output) if job.output else None,
            "status": status, "key": job.key, **fields}


def _outcome_record(job: Job, done: TaskDone) -> dict:
    if done.error is not None:  # every attempt's worker died
        return _record(job, FAILED, error=done.error, exit_code=EXIT_INTERNAL_ERROR, attempts=done.attempts)
    outcome: JobOutcome = done.value
    fields = {"seconds": round(outcome.seconds, 3), "attempts": done.attempts, "worker": outcome.worker,
              "worker_jobs": outcome.worker_jobs, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if outcome.status == DONE:
        return _record(job, DONE, **fields)
    return _record(job, FAILED, error=outcome.error, exit_code=outcome.exit_code, **fields)


def remove_partials(job: Job) -> None:
    """Delete what a killed attempt left of the job's files (a finished attempt leaves none)."""
    for path in (job.output, job.export_motion):
        if path is not None:
            for leftover in video_partials(path) + file_partials(path):
                leftover.unlink(missing_ok=True)


def _make_folder(job: Job) -> str | None:
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{job.output.parent}: cannot create the output folder ({e.strerror or e}) - choose another output"
    return None


def run_batch(jobs_file, pool, manifest=None, force: bool = False, progress: bool = True,
              log: Log = print) -> BatchReport:
    """Run every job of ``jobs_file`` not done before on ``pool`` (avatar.batch.pool.LocalPool
    or avatar.batch.raypool.RayPool)."""
    from tqdm import tqdm

    started = time.perf_counter()
    jobs = read_jobs(jobs_file)
    path = Path(manifest) if manifest else manifest_path(jobs_file)
    if path.is_dir():
        raise AvatarError("the manifest is a folder", str(path), "give a file path to --manifest")
    previous = {} if force else read_manifest(path)
    records: dict[int, dict] = {}
    todo: list[Job] = []
    failed = 0
    for job in jobs:
        before = previous.get((job.key, str(job.output)))
        done_before = is_done(before)
        problem = job.error or (None if done_before else _make_folder(job))
        if problem is not None:
            records[job.line] = _record(job, FAILED, error=problem, exit_code=EXIT_USER_ERROR)
            failed += 1
            log(f"failed line {job.line}: {problem}")
        elif done_before:
            records[job.line] = {**before, "line": job.line, "id": job.id, "resumed": True}
        else:
            todo.append(job)
    log(f"{len(jobs)} job(s): {len(todo)} to run, {len(jobs) - len(todo) - failed} done before, "
        f"{failed} invalid; {pool.describe()}")
    with ExitStack() as stack:
        out = stack.enter_context(_open_manifest(path))
        bar = stack.enter_context(tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="jobs", unit="job",
                                       disable=not progress, dynamic_ncols=True, file=sys.stderr))
        try:
            with contextlib.closing(pool.run(run_job, todo)) as finished:  # workers stopped before the sweep
                for done in finished:
                    job = todo[done.index]
                    remove_partials(job)
                    record = records[job.line] = _outcome_record(job, done)
                    out.append(record)
                    if record["status"] == FAILED:
                        failed += 1
                        (_bar_write(bar) if progress else log)(f"failed line {job.line} ({job.output.name}): "
                                                               f"{record['error']}")
                    bar.set_postfix(running=pool.running, failed=failed, refresh=False)
                    bar.update()
        finally:
            for job in todo:  # interrupted: nothing half-written stays
                if job.line not in records:
                    remove_partials(job)
        ordered = [records[job.line] for job in jobs]
        out.finish(ordered)
    return BatchReport(path, ordered, time.perf_counter() - started, len(todo))


@contextlib.contextmanager
def _open_manifest(path: Path):
    try:
        log = ManifestLog(path)
    except OSError as e:
        raise AvatarError(f"cannot write the manifest ({e.strerror or e})", str(path),
                          "give a writable path with --manifest") from None
    try:
        yield log
    finally:
        log.close()


def _bar_write(bar):
    """A log line above the progress bar, on stderr like the bar."""
    return lambda message: bar.write(f"avatar: {message}", file=sys.stderr)
