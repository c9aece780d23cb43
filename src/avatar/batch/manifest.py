"""The batch manifest: one JSON line per job (status, output, timings, error).

During a run every finished job is appended (and flushed) at once, so a run that is
killed loses nothing it finished; at the end the file is rewritten atomically with one
line per job of the jobs file, in its order. A re-run reads it to skip the jobs that are
done: same job line (by hash), output still there.
"""

from __future__ import annotations

import json
from pathlib import Path

from avatar.fileio import atomic_write

DONE, FAILED = "done", "failed"


def manifest_path(jobs_path) -> Path:
    """The default manifest of a jobs file: ``JOBS.manifest.jsonl`` beside it."""
    jobs_path = Path(jobs_path)
    return jobs_path.with_name(jobs_path.name.removesuffix(".jsonl") + ".manifest.jsonl")


def read_manifest(path) -> dict[tuple[str, str], dict]:
    """The last record of every (job key, output) in a manifest; {} if there is none.
    Lines that are not records (a run killed mid-line) are ignored."""
    records = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return records
    for line in lines:
        try:
            record = json.loads(line)
            records[(record["key"], record["output"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    return records


def is_done(record: dict | None) -> bool:
    """A record of a job that finished and whose output is still there."""
    return (record is not None and record.get("status") == DONE and record.get("output") is not None
            and Path(record["output"]).is_file())


class ManifestLog:
    """Appends records as jobs finish; ``finish`` rewrites the whole manifest in job order."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def finish(self, records: list[dict]) -> None:
        self._file.close()
        text = "".join(json.dumps(r) + "\n" for r in records)
        atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))

    def close(self) -> None:
        self._file.close()
