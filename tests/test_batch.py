"""avatar batch: jobs files, the local pool surviving a killed worker, resuming, and a
real two-node Ray cluster on 127.0.0.1 losing a node mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avatar.batch.jobs import read_jobs
from avatar.batch.pool import LocalPool
from avatar.video.reader import iter_frames, probe, read_audio_track

SENTENCES = ("Hello there, this is the first video of the batch.",
             "Good morning to you, and welcome to the second one.",
             "A third sentence, spoken slowly and with care.")


def _write_jobs(folder: Path, portrait_path, bad: bool = True, **extra) -> Path:
    shutil.copy(portrait_path, folder / "face.jpg")
    jobs = [{"image": "face.jpg", "text": text, "max_size": 160, "seed": i, "output": f"out/v{i}.mp4", **extra}
            for i, text in enumerate(SENTENCES)]
    if bad:
        jobs.insert(1, {"image": "missing.jpg", "text": "Hi.", "output": "out/bad.mp4"})
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def _plays(path: Path) -> None:
    info = probe(path)
    assert info.has_audio and info.num_frames > 10
    assert sum(1 for _ in iter_frames(path)) == info.num_frames
    assert read_audio_track(path).samples.size > 0


def _manifest(folder: Path) -> dict[str, dict]:
    lines = (folder / "jobs.manifest.jsonl").read_text().splitlines()
    return {Path(r["output"]).name: r for r in map(json.loads, lines)}


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.rglob(".*") if "partial" in p.name]


# -- the jobs file -----------------------------------------------------------------------
def test_jobs_are_checked_by_their_commands_parser(tmp_path):
    lines = [
        {"image": "a.jpg", "text": "-starts with a dash", "head_motion": 0.5, "gaze": [10, -5], "output": "o/1.mp4"},
        {"video": "talk.mp4", "audio": "fr.wav", "output": "o/2.mp4"},
        {"image": "a.jpg", "text": "Hi.", "fps": 0, "output": "o/3.mp4"},
        {"image": "a.jpg", "text": "Hi."},
        {"image": "a.jpg", "text": "Hi.", "colour": "red", "output": "o/5.mp4"},
        {"image": "a.jpg", "text": "Hi.", "output": "o/1.mp4"},
        {"image": "a.jpg", "text": "Hi.", "quiet": True, "output": "o/7.mp4"},
        ["not", "an", "object"],
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + "\n{broken\n")
    jobs = read_jobs(path)
    assert [j.line for j in jobs] == [1, 2, 3, 4, 5, 6, 7, 8, 10]  # blank line 9 skipped
    speak, dub = jobs[0].parse(), jobs[1].parse()
    assert speak.text == "-starts with a dash" and speak.gaze == (10.0, -5.0) and speak.head_motion == 0.5
    assert speak.image == str(tmp_path / "a.jpg") and jobs[0].output == tmp_path / "o" / "1.mp4"
    assert dub.command == "dub" and dub.video == str(tmp_path / "talk.mp4")
    errors = [j.error for j in jobs[2:]]
    assert errors[0] == "fps: must be between 1 and 120, got 0"
    assert "needs an \"output\"" in errors[1]
    assert "unrecognized arguments: --colour=red" in errors[2]
    assert "also written by the job on line 1" in errors[3]
    assert "'quiet' is not a job field" in errors[4]
    assert "JSON object" in errors[5] and errors[6].startswith("not JSON")
    assert len({j.key for j in jobs}) == len(jobs)


# -- the local pool -----------------------------------------------------------------------
def _die_on_first_attempt(task):
    """Kill this worker the first time it sees the task (the marker tells it apart)."""
    marker, value = task
    if value == "die" and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return value, os.getpid()


def test_local_pool_retries_only_the_task_whose_worker_died(tmp_path):
    marker = str(tmp_path / "died")
    tasks = [(marker, v) for v in ("a", "die", "b", "c")]
    done = {d.index: d for d in LocalPool(2, retries=1, threads=1).run(_die_on_first_attempt, tasks)}
    assert sorted(done) == [0, 1, 2, 3] and all(d.error is None for d in done.values())
    assert [d.attempts for d in done.values() if d.index != 1] == [1, 1, 1]
    assert done[1].attempts == 2 and done[1].value[0] == "die"
    always = [(marker, "die")]
    os.remove(marker)
    lost = list(LocalPool(1, retries=0, threads=1).run(_die_on_first_attempt, always))
    assert lost[0].error == "worker process killed by SIGKILL on each of 1 attempt(s)"


def test_batch_runs_jobs_alone_records_and_resumes(tmp_path, portrait_path, capsys):
    from avatar.cli import main

    jobs = _write_jobs(tmp_path, portrait_path)
    assert main(["batch", str(jobs), "--workers", "2", "-q"]) == 2  # the bad job's exit code
    records = _manifest(tmp_path)
    assert records["bad.mp4"]["status"] == "failed" and "file not found" in records["bad.mp4"]["error"]
    assert not (tmp_path / "out" / "bad.mp4").exists()
    for i in range(3):
        record = records[f"v{i}.mp4"]
        assert record["status"] == "done" and record["attempts"] == 1
        _plays(tmp_path / "out" / f"v{i}.mp4")
    # two workers shared the jobs, and a worker's later job found the models loaded
    workers = [records[f"v{i}.mp4"]["worker"] for i in range(3)] + [records["bad.mp4"]["worker"]]
    assert len(set(workers)) == 2 and max(r["worker_jobs"] for r in records.values()) >= 2
    _no_leftovers(tmp_path)

    stamps = {i: (tmp_path / "out" / f"v{i}.mp4").stat().st_mtime_ns for i in range(3)}
    lines = jobs.read_text().splitlines()
    lines[2] = lines[2].replace('"seed": 1', '"seed": 5')  # a changed job is not done
    jobs.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["batch", str(jobs), "--workers", "1"]) == 2
    assert "2 to run, 2 done before, 0 invalid" in capsys.readouterr().err  # the bad one is tried again
    assert (tmp_path / "out" / "v1.mp4").stat().st_mtime_ns != stamps[1]
    assert all((tmp_path / "out" / f"v{i}.mp4").stat().st_mtime_ns == stamps[i] for i in (0, 2))
    records = _manifest(tmp_path)
    assert len(records) == 4 and records["v0.mp4"]["resumed"] and records["v1.mp4"]["status"] == "done"


def test_batch_refuses_what_is_not_a_jobs_file(tmp_path, capsys):
    from avatar.cli import main

    (tmp_path / "empty.jsonl").write_text("\n\n")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    for name, message in (("missing.jsonl", "jobs file not found"), ("empty.jsonl", "has no jobs"),
                          ("binary.jsonl", "not a text file"), (".", "is a folder")):
        assert main(["batch", str(tmp_path / name), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("avatar: error: ") and message in err and "\n" not in err


def test_ctrl_c_mid_batch_leaves_no_partial_file_and_the_rerun_finishes(tmp_path, portrait_path):
    jobs = _write_jobs(tmp_path, portrait_path, bad=False, max_size=320)
    batch = subprocess.Popen([sys.executable, "-m", "avatar.cli", "batch", str(jobs), "--workers", "2", "-q"],
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _partial_pids(tmp_path / "out") and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(batch.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the driver and its workers
    err = batch.communicate(timeout=60)[1]
    assert batch.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("avatar: interrupted; the jobs that finished are kept; "
                                            "run it again to go on")
    _no_leftovers(tmp_path)
    finished = {p.name for p in (tmp_path / "out").iterdir()}
    assert len(finished) < 3
    from avatar.cli import main

    assert main(["batch", str(jobs), "-q"]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"v0.mp4", "v1.mp4", "v2.mp4"}
    records = _manifest(tmp_path)
    assert all(records[name].get("resumed") for name in finished)
    _no_leftovers(tmp_path)


def test_no_ray_cluster_there_is_one_line_at_once(tmp_path, portrait_path, capsys):
    pytest.importorskip("ray")
    from avatar.cli import main

    jobs = _write_jobs(tmp_path, portrait_path, bad=False)
    started = time.monotonic()
    assert main(["batch", str(jobs), "--ray", "127.0.0.1:1", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avatar: error: --ray: no Ray cluster answers at 127.0.0.1:1") and "\n" not in err
    assert time.monotonic() - started < 10 and not (tmp_path / "out").exists()


# -- a real Ray cluster -------------------------------------------------------------------
def _partial_pids(folder: Path) -> set[int]:
    """Pids in the names of the writers' partial files (``.v0.mp4.<pid>.partial.mp4``)."""
    pids = set()
    for p in folder.glob(".*.partial*"):
        part = p.name.split(".partial")[0].rsplit(".", 1)[-1]  # .v0.<pid>.partial.mp4
        if part.isdigit():
            pids.add(int(part))
    return pids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and one worker node on 127.0.0.1, one CPU each."""
    pytest.importorskip("ray")
    from avatar.batch.localray import LocalRayCluster

    with LocalRayCluster(workers=1, log_dir=tmp_path_factory.mktemp("ray")) as running:
        yield running


def test_prepare_on_the_ray_cluster(cluster, tmp_path, portrait_path):
    import avatar
    from avatar.cli import main
    from avatar.data import load_clip
    from avatar.data.clip import clip_path
    from avatar.data.report import load_report

    talk = avatar.speak(portrait_path, tmp_path / "talk.mp4", text=SENTENCES[0], max_size=320).output
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4000))
    out = tmp_path / "dataset"
    assert main(["prepare", str(talk), str(garbage), "-o", str(out), "--ray", cluster.address, "-q"]) == 0
    report = load_report(out)
    assert report["talk"].status == "prepared" and report["garbage"].code == "unreadable"
    assert load_clip(clip_path(out, "talk")).num_frames == probe(talk).num_frames


def test_batch_on_a_two_node_ray_cluster_survives_losing_a_node(cluster, tmp_path, portrait_path):
    jobs = _write_jobs(tmp_path, portrait_path, bad=True, max_size=320)
    worker_node = cluster.nodes[0]
    batch = subprocess.Popen([sys.executable, "-m", "avatar.cli", "batch", str(jobs), "--ray", cluster.address,
                              "-q"], stderr=subprocess.PIPE, text=True)
    killed = False
    deadline = time.monotonic() + 240
    while batch.poll() is None and time.monotonic() < deadline:
        if not killed and _partial_pids(tmp_path / "out") & cluster.pids(worker_node):
            cluster.kill(worker_node)  # mid-render, as a machine dies
            killed = True
        time.sleep(0.05)
    err = batch.communicate(timeout=60)[1]
    assert killed, "no job ran on the worker node"
    assert batch.returncode == 2, err  # the bad job
    records = _manifest(tmp_path)
    assert records["bad.mp4"]["status"] == "failed" and "file not found" in records["bad.mp4"]["error"]
    assert max(records[f"v{i}.mp4"]["attempts"] for i in range(3)) == 2  # the job on the killed node
    for i in range(3):
        assert records[f"v{i}.mp4"]["status"] == "done"
        _plays(tmp_path / "out" / f"v{i}.mp4")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["v0.mp4", "v1.mp4", "v2.mp4"]
    _no_leftovers(tmp_path)
