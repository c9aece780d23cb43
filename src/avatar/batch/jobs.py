"""A JOBS.jsonl file: one job a line, the fields of ``avatar speak`` / ``avatar dub``.

    {"image": "anna.jpg", "text": "Welcome back!", "emotion": "happy", "output": "out/anna.mp4"}
    {"command": "dub", "video": "talk.mp4", "audio": "talk_fr.wav", "output": "out/talk_fr.mp4"}

Each line becomes the argument list of the command it names and is checked by that
command's own parser, so a job accepts and refuses exactly what the command line does.
Relative paths are relative to the folder of the jobs file. A line that cannot be read or
checked becomes a job that fails alone, with its reason; the others still run.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from avatar.commands import dub as dub_command
from avatar.commands import speak as speak_command
from avatar.errors import AvatarError

COMMANDS = ("speak", "dub")
PATH_FIELDS = ("image", "audio", "video", "checkpoint", "output", "export_motion")
NOT_JOB_FIELDS = ("quiet", "debug", "help")  # the batch decides these, not the job
MAX_LINE_BYTES = 1 << 20  # a longer line is not a job description


class JobFieldError(AvatarError):
    """A job line that its command's parser refuses."""


class _JobParser(argparse.ArgumentParser):
    """The commands' parsers, raising instead of exiting (one job's error is not the batch's)."""

    def error(self, message: str):
        message = message.removeprefix("argument ")
        name = re.match(r"(-o/)?--([\w-]+): ", message)
        if name:  # "--head-motion: ..." -> "head_motion: ...", the job's own field name
            message = name.group(2).replace("-", "_") + message[name.end() - 2:]
        raise JobFieldError(message)


@functools.lru_cache(maxsize=1)  # one for all the lines: building it costs more than a parse
def _parser() -> argparse.ArgumentParser:
    parser = _JobParser(prog="job", add_help=False)
    sub = parser.add_subparsers(dest="command", required=True)
    speak_command.add_parser(sub)
    dub_command.add_parser(sub)
    return parser


@dataclass(frozen=True)
class Job:
    """One line of a jobs file. ``argv`` is None when the line is invalid (``error`` says why)."""

    line: int  # 1-based line number in the jobs file
    id: str  # the job's "id" field, else "line N"
    output: Path | None
    argv: tuple[str, ...] | None
    key: str  # hash of the job's fields: a changed job is not "already done"
    error: str | None = None

    @property
    def command(self) -> str | None:
        return self.argv[0] if self.argv else None

    @property
    def export_motion(self) -> Path | None:
        """The motion file the job also writes, if any."""
        prefix = "--export-motion="
        found = [a.removeprefix(prefix) for a in self.argv or () if a.startswith(prefix)]
        return Path(found[0]) if found else None

    def parse(self) -> argparse.Namespace:
        """The command's arguments (JobFieldError if the parser refuses them)."""
        args = _parser().parse_args(list(self.argv))
        args.quiet, args.debug = True, False
        return args


def read_jobs(path) -> list[Job]:
    """Every non-blank line of a jobs file as a Job (invalid ones carry their error)."""
    path = Path(path)
    if path.is_dir():
        raise AvatarError("is a folder, not a jobs file", str(path), "give a .jsonl file, one job a line")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise AvatarError("jobs file not found", str(path), "check the path") from None
    except OSError as e:
        raise AvatarError(f"cannot read the jobs file ({e.strerror or e})", str(path)) from None
    except UnicodeDecodeError:
        raise AvatarError("not a text file", str(path),
                          "give a UTF-8 .jsonl file with one JSON object a line") from None
    jobs = [_job(n, line, path.parent) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not jobs:
        raise AvatarError("the jobs file has no jobs", str(path), "write one JSON object a line")
    return _refuse_shared_outputs(jobs)


def _job(line: int, text: str, base: Path) -> Job:
    key = hashlib.sha256(text.strip().encode()).hexdigest()[:16]
    try:
        fields = _fields(text)
        job_id = str(fields.pop("id", f"line {line}"))
        argv = _argv(fields, base)
        job = Job(line, job_id, Path(fields_path(fields, "output", base)), tuple(argv), key)
        job.parse()  # refused now, before any work, with the command's own message
        return job
    except AvatarError as e:
        output = _output_of(text, base)
        return Job(line, f"line {line}", output, None, key, error=e.one_line())


def _fields(text: str) -> dict:
    if len(text) > MAX_LINE_BYTES:
        raise AvatarError(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as e:
        raise AvatarError(f"not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(fields, dict):
        raise AvatarError("a job is a JSON object, e.g. {\"image\": \"me.jpg\", \"text\": \"Hi\", "
                          "\"output\": \"hi.mp4\"}")
    fields = {str(k).replace("-", "_"): v for k, v in fields.items()}
    for name in NOT_JOB_FIELDS:
        if name in fields:
            raise AvatarError(f"field {name!r} is not a job field")
    if not isinstance(fields.get("output"), str) or not fields["output"]:
        raise AvatarError("every job needs an \"output\" (the video to write)")
    return fields


def fields_path(fields: dict, name: str, base: Path) -> str:
    """A path field resolved against the jobs file's folder."""
    return str((base / str(fields[name])).resolve())


def _argv(fields: dict, base: Path) -> list[str]:
    fields = dict(fields)
    command = fields.pop("command", "dub" if "video" in fields else "speak")
    if command not in COMMANDS:
        raise AvatarError(f"unknown command {command!r}", "command", f"use one of {', '.join(COMMANDS)}")
    positional = []
    if command == "dub" and "video" in fields:
        positional = ["--", fields_path(fields, "video", base)]
        del fields["video"]
    argv = [command]
    for name, value in fields.items():
        if value is None:
            continue
        if name in PATH_FIELDS:
            value = fields_path(fields, name, base)
        elif name == "avatar" and ("/" in str(value) or (base / str(value)).is_dir()):
            value = str((base / str(value)).resolve())  # a bundle folder, not a name
        argv.append(f"--{name.replace('_', '-')}={_text(name, value)}")  # '=': values may start with '-'
    return argv + positional


def _text(name: str, value) -> str:
    if isinstance(value, bool) or isinstance(value, (dict, list)) and name != "gaze":
        raise AvatarError(f"field {name!r} has the wrong type ({type(value).__name__})")
    if isinstance(value, list):  # "gaze": [X, Y]
        return ",".join(str(v) for v in value)
    return str(value)


def _output_of(text: str, base: Path) -> Path | None:
    """The output named by an invalid line, if it names one (for the manifest)."""
    try:
        fields = json.loads(text)
        return Path(fields_path(fields, "output", base)) if isinstance(fields.get("output"), str) else None
    except (ValueError, AttributeError, TypeError, OSError):
        return None


def _refuse_shared_outputs(jobs: list[Job]) -> list[Job]:
    """A second job writing an output that an earlier one writes fails (it would overwrite it)."""
    first: dict[Path, int] = {}
    checked = []
    for job in jobs:
        if job.argv is not None and job.output in first:
            job = Job(job.line, job.id, job.output, None, job.key,
                      error=f"output: also written by the job on line {first[job.output]} - "
                            "give each job its own output")
        elif job.argv is not None:
            first[job.output] = job.line
        checked.append(job)
    return checked
