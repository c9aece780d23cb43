"""The dataset's ``report.json``: what became of every video, kept across runs.

One entry per video (keyed by its name, the file stem): the clips it produced, or why it
was skipped, plus the source file's size and modification time so that a later run can
tell whether the video changed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avatar.errors import AvatarError
from avatar.fileio import atomic_write

REPORT_NAME = "report.json"
REPORT_FORMAT = "avatar-dataset-report"
REPORT_VERSION = 1
PREPARED, KEPT, SKIPPED = "prepared", "kept", "skipped"  # KEPT: prepared by an earlier run


@dataclass
class VideoReport:
    """What happened to one video."""

    name: str
    source: str  # absolute path of the video
    status: str  # PREPARED, KEPT or SKIPPED
    clips: list[str] = field(default_factory=list)  # clip names (files <name>.npz)
    code: str | None = None  # why it was skipped: a short machine-readable word
    reason: str | None = None  # the same for people (or notes on a prepared video)
    num_frames: int = 0
    duration: float = 0.0  # seconds of video
    processing_seconds: float = 0.0
    source_size: int | None = None  # bytes, to notice a changed source
    source_mtime: float | None = None
    # per clip, when the pose ran: {"tracked": clip has a body track, "shoulders_visible":
    # share of its frames with both shoulders seen} (avatar.data.body)
    body: dict = field(default_factory=dict)

    @property
    def realtime_factor(self) -> float:
        """Seconds of processing per second of video (<= 1 is faster than real time)."""
        return self.processing_seconds / self.duration if self.duration else float("nan")


@dataclass
class PrepareReport:
    """The videos of one ``prepare_videos`` run, in input order; ``path``: the report file."""

    path: Path
    videos: list[VideoReport]

    def _with(self, *statuses: str) -> list[VideoReport]:
        return [v for v in self.videos if v.status in statuses]

    @property
    def prepared(self) -> list[VideoReport]:
        """Videos with clips in the dataset (made now or by an earlier run)."""
        return self._with(PREPARED, KEPT)

    @property
    def skipped(self) -> list[VideoReport]:
        return self._with(SKIPPED)

    @property
    def clips(self) -> list[str]:
        return [c for v in self.prepared for c in v.clips]


def report_path(out_dir) -> Path:
    """Where a dataset folder's report lives."""
    return Path(out_dir) / REPORT_NAME


def load_report(out_dir) -> dict[str, VideoReport]:
    """Every video entry of the dataset's report by name ({} if there is none yet)."""
    path = report_path(out_dir)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        return {name: VideoReport(**entry) for name, entry in doc["videos"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AvatarError(f"cannot read the dataset report ({e.__class__.__name__})", str(path),
                          "delete it to start the report afresh (prepared clips are kept)") from None


def save_report(entries: dict[str, VideoReport], out_dir) -> Path:
    """Write all ``entries`` to the dataset's report.json, atomically; returns its path."""
    path = report_path(out_dir)
    doc = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
           "videos": {name: asdict(entry) for name, entry in sorted(entries.items())}}
    atomic_write(path, lambda f: f.write(json.dumps(doc, indent=1).encode()))
    return path
