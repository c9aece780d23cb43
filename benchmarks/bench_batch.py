"""Jobs per minute of `avatar batch` for 1, 2 and 4 workers, and the scaling efficiency.

    python benchmarks/bench_batch.py [--jobs 8] [--workers 1,2,4] [--backend local|ray|both]
                                     [--data ../shared/data] [--max-size 512]

The jobs: real portraits (../shared/data/portraits) each saying a whole real recording of
at most 20 s (../shared/data/audio), round robin; falls back to the bundled portrait with the bundled voice when the
data folder is missing. ``local``: LocalPool with N processes (cores / N threads each);
``ray``: a throwaway Ray cluster on 127.0.0.1 of N one-CPU nodes (the head and N-1
workers), started before the clock. Efficiency = (jobs/min with N) / (N x jobs/min with
1). On a machine with C cores, more than C workers cannot scale further.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from avatar.batch.pool import LocalPool, cpu_count
from avatar.batch.run import run_batch
from avatar.image import bundled_portrait

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac")
IMAGE_SUFFIXES = (".jpg", ".png")
MAX_AUDIO_SECONDS = 20.0  # longer recordings make few, slow jobs: keep the batch many and short
FALLBACK_TEXT = "Hello, and welcome. This video was made by a batch job, one of many."


def _seconds_in_name(path: Path) -> float:
    """a05_en_pats_chemistry_14s.wav -> 14 (the data README's naming); inf if absent."""
    tail = path.stem.rsplit("_", 1)[-1]
    try:
        return float(tail.removesuffix("s"))
    except ValueError:
        return float("inf")


def make_jobs(folder: Path, data: Path, count: int, max_size: int) -> Path:
    images = sorted(p for p in (data / "portraits").glob("*") if p.suffix in IMAGE_SUFFIXES)
    audio = sorted(p for p in (data / "audio").glob("*") if p.suffix in AUDIO_SUFFIXES
                   and _seconds_in_name(p) <= MAX_AUDIO_SECONDS)
    lines = []
    for i in range(count):
        job = {"output": f"out/job{i:03d}.mp4", "max_size": max_size, "seed": i}
        if images and audio:
            job.update(image=str(images[i % len(images)]), audio=str(audio[i % len(audio)]))
        else:
            job.update(image=str(bundled_portrait()), text=FALLBACK_TEXT)
        lines.append(json.dumps(job))
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _measure(jobs: Path, pool, label: str) -> dict:
    started = time.perf_counter()
    report = run_batch(jobs, pool, force=True, progress=False, log=lambda _: None)
    wall = time.perf_counter() - started
    done = [r for r in report.records if r["status"] == "done"]
    failed = [r for r in report.records if r["status"] != "done"]
    for r in failed:
        print(f"  {label}: job on line {r['line']} failed: {r.get('error')}")
    first = [r["seconds"] for r in done if r.get("worker_jobs") == 1]
    later = [r["seconds"] for r in done if r.get("worker_jobs", 1) > 1]
    return {"jobs_per_min": 60 * len(done) / wall, "wall": wall, "done": len(done), "failed": len(failed),
            "first_job_s": statistics.median(first) if first else float("nan"),
            "later_job_s": statistics.median(later) if later else float("nan")}


def _local(jobs: Path, n: int) -> dict:
    pool = LocalPool(n)
    return {**_measure(jobs, pool, f"local x{n}"), "threads": pool.threads}


def _ray(jobs: Path, n: int) -> dict:
    from avatar.batch.localray import LocalRayCluster
    from avatar.batch.raypool import RayPool

    with LocalRayCluster(workers=n - 1) as cluster:
        pool = RayPool(cluster.address)
        try:
            return {**_measure(jobs, pool, f"ray x{n}"), "threads": 1}
        finally:
            pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--backend", choices=("local", "ray", "both"), default="both")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--max-size", type=int, default=512)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    backends = ["local", "ray"] if args.backend == "both" else [args.backend]
    print(f"{args.jobs} jobs, {cpu_count()} core(s), photos at most {args.max_size} px, data: "
          f"{args.data if (args.data / 'audio').is_dir() else 'bundled portrait + voice'}")
    print(f"{'backend':8} {'workers':>7} {'threads':>7} {'jobs/min':>9} {'wall s':>7} {'efficiency':>10} "
          f"{'1st job s':>9} {'later s':>8} {'failed':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = make_jobs(Path(tmp), args.data, args.jobs, args.max_size)
        for backend in backends:
            base = None
            for n in counts:
                r = (_local if backend == "local" else _ray)(jobs, n)
                base = base or r["jobs_per_min"] / counts[0]
                efficiency = r["jobs_per_min"] / (n * base)
                print(f"{backend:8} {n:7d} {r['threads']:7d} {r['jobs_per_min']:9.1f} {r['wall']:7.1f} "
                      f"{efficiency:10.0%} {r['first_job_s']:9.2f} {r['later_job_s']:8.2f} {r['failed']:6d}",
                      flush=True)


if __name__ == "__main__":
    main()
