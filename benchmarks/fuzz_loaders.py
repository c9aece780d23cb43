"""Coverage-guided fuzzing (atheris / libFuzzer) of every loader a user's file reaches.

    python benchmarks/fuzz_loaders.py [--seconds-per-target 60] [--targets image,audio,...]
                                      [--corpus-dir DIR] [--crash-dir /work/tmp/fuzz_crashes]
    python benchmarks/fuzz_loaders.py --replay FILE --targets motion   # re-run one input

Each target writes the fuzzed bytes to a temporary file (the loaders take paths) and calls
the loader the way the CLI does. The rule: every input either loads or raises
:class:`avatar.errors.AvatarError`; anything else is a crash - another exception, a hang
over ``--timeout`` seconds, or memory beyond ``--rss-limit-mb`` (huge allocations also
fail fast: the address space is capped). Seeds are small valid files made on the fly by
the engine's own writers. The npz-based targets (motion, bundle, clip) also mutate the
archive's arrays and JSON structurally (dtype, shape, missing keys, odd JSON values), as
byte mutations of a compressed zip rarely get past its checksums.

Targets run one after another, each in its own subprocess (``atheris.Fuzz`` never
returns); a subprocess killed by a hang or the memory limit is restarted for the rest of
the target's time. Crash inputs are written to ``--crash-dir`` as
``TARGET-ExceptionType-HASH`` (plus ``.txt`` with the traceback), or ``TARGET-timeout-SHA``
/ ``TARGET-oom-SHA`` by libFuzzer.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

DEFAULT_CRASH_DIR = Path("/work/tmp/fuzz_crashes")
TARGETS = ("image", "audio", "video", "motion", "checkpoint", "bundle", "clip")
ADDRESS_SPACE_MARGIN = 6 << 30  # bytes of address space a worker may add to its start-up size
STATS_EVERY = 1.0  # seconds between a worker's iteration-count updates
MAX_RESTARTS = 30  # per target: a hang found again and again must not loop forever
RAW, STRUCTURED = 0, 1  # first byte of an npz-target input: mutate the file's bytes or its arrays


# == seeds: small valid files made by the engine's own writers ==============================
def portrait(size=(80, 96)):
    from PIL import Image

    from avatar.image import bundled_portrait, load_image

    return Image.fromarray(load_image(bundled_portrait())).resize(size)


def image_seeds(work: Path) -> dict[str, bytes]:
    import numpy as np
    from PIL import Image

    im = portrait()
    out = {}
    for name, image, kwargs in (
            ("face.jpg", im, {"format": "JPEG", "quality": 60}),
            ("face.png", im.quantize(16), {"format": "PNG"}),
            ("face.webp", im, {"format": "WEBP", "quality": 40}),
            ("face.gif", im.quantize(8), {"format": "GIF"}),
            ("rgba.png", im.convert("RGBA"), {"format": "PNG"}),
            ("gray16.png", Image.fromarray((np.asarray(im.convert("L"), np.uint16) * 257)), {"format": "PNG"})):
        buf = io.BytesIO()
        image.save(buf, **kwargs)
        out[name] = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated, so exif_transpose runs
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=50, exif=exif)
    out["rotated.jpg"] = buf.getvalue()
    return out


def tone(seconds: float, rate: int, channels: int = 1):
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, 1)


def audio_seeds(work: Path) -> dict[str, bytes]:
    import soundfile

    out = {}
    for name, rate, channels, fmt in (("a.wav", 16000, 1, "WAV"), ("a.flac", 22050, 2, "FLAC"),
                                      ("a.ogg", 16000, 1, "OGG")):
        path = work / name
        soundfile.write(str(path), tone(0.15, rate, channels), rate, format=fmt)
        out[name] = path.read_bytes()
    return out


def video_seeds(work: Path) -> dict[str, bytes]:
    import numpy as np

    from avatar.audio.types import Audio
    from avatar.video.writer import VideoWriter

    frame = np.asarray(portrait((48, 48)))
    out = {}
    for name, audio in (("av.mp4", Audio(tone(0.24, 16000), 16000)), ("v.mp4", None)):
        path = work / name
        with VideoWriter(path, 48, 48, fps=25, audio=audio) as writer:
            for i in range(6):
                writer.write(np.roll(frame, i, axis=1))
        out[name] = path.read_bytes()
    return out


def tiny_motion(T: int = 6):
    import numpy as np

    from avatar.motion.types import BODY_JOINTS, MotionSeq

    seq = MotionSeq.neutral(T, 25.0)
    seq.rotation[:, 0] = np.linspace(0, 0.1, T)
    seq.set_action("jawOpen", np.linspace(0, 1, T))
    seq.upper_body = np.zeros((T, len(BODY_JOINTS), 2), np.float32)
    return seq


def motion_seeds(work: Path) -> dict[str, bytes]:
    from avatar.motion.io import save_motion

    save_motion(tiny_motion(), work / "m.npz")
    return {"m.npz": (work / "m.npz").read_bytes()}


def tiny_model():
    import torch

    from avatar.diffusion import EDMPrecond, MotionTransformer, MotionTransformerConfig

    torch.manual_seed(0)
    cfg = MotionTransformerConfig(motion_dim=3, frame_conds={"audio": 2}, width=8, depth=1, heads=1)
    return EDMPrecond(MotionTransformer(cfg))


def checkpoint_seeds(work: Path) -> dict[str, bytes]:
    from avatar.diffusion.checkpoint import save_model

    path = save_model(work / "m.safetensors", tiny_model(), extra={"step": 1})
    return {"m.safetensors": path.read_bytes()}


def tiny_bundle(folder: Path, T: int = 8) -> Path:
    """A bundle of T synthetic frames (every file load_bundle reads, no frames or model)."""
    import numpy as np

    from avatar.audio.types import AudioFeatures, Phone
    from avatar.body.types import BodyTrack
    from avatar.gesture.bundle import MOUTH, Bundle, BundleWriter, EnrollReport, save_bundle_arrays
    from avatar.gesture.graph import MotionGraph
    from avatar.render.mouth_bank import KEY_SIZE, PATCH_SIZE

    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    body = BodyTrack(25.0, (48, 48), f32(T, 33, 3), f32(T, 33, 3), f32(T, 2, 21, 3), f32(T, 2, 21, 3),
                     np.zeros((T, 4, 4), np.uint8), f32(T, 478, 3))
    features = AudioFeatures(25.0, *(rng.random(T) for _ in range(4)), f32(T, 4))
    graph = MotionGraph(np.array([0, 4]), np.array([0, 0]), np.array([[0, 1], [1, 0]], bool))
    bundle = Bundle(folder, "fuzz", "fuzz.mp4", 25.0, (48, 48), body, features,
                    [Phone("SIL", 0.0, 0.1), Phone("AA", 0.1, T / 25)], graph, f32(T, 4), f32(T, 4),
                    EnrollReport(frames=T))
    with BundleWriter(folder, force=True) as writer:
        save_bundle_arrays(writer, bundle)
        w, h = PATCH_SIZE
        writer.save_npz(MOUTH, {"patches": np.zeros((2, h, w, 3), np.uint8), "keys": f32(2, KEY_SIZE)})
        return writer.commit()


BUNDLE_MEMBERS = ("bundle.json", "track.npz", "graph.npz", "embeddings.npz", "mouth.npz")


def bundle_seeds(work: Path) -> dict[str, bytes]:
    folder = tiny_bundle(work / "bundle")
    out = {}
    for i, name in enumerate(BUNDLE_MEMBERS):
        out[f"raw-{name}"] = bytes([RAW + 2 * i]) + (folder / name).read_bytes()
        out[f"structured-{name}"] = bytes([STRUCTURED + 2 * i]) + os.urandom(64)
    return out


def tiny_clip(T: int = 8):
    import numpy as np

    from avatar.audio.types import AudioFeatures, Phone
    from avatar.data.body import NUM_JOINTS
    from avatar.data.clip import Clip, ReferenceFace
    from avatar.face.model import face_template

    rng = np.random.default_rng(0)
    neutral = face_template()[0] * 100
    landmarks = np.repeat(neutral[None], T, 0).astype(np.float32)
    features = AudioFeatures(25.0, *(rng.random(T) for _ in range(4)), rng.random((T, 4)))
    reference = ReferenceFace(0, neutral, np.eye(3), 100.0, np.zeros(3), neutral[:, :2])
    return Clip("fuzz", 25.0, tiny_motion(T), landmarks, np.ones(T, bool), np.zeros(T, np.float32),
                features, [Phone("SIL", 0.0, T / 25)], [(T - 2, T)], reference, "fuzz.mp4", (48, 48),
                body_points=rng.random((T, NUM_JOINTS, 3)).astype(np.float32))


def clip_seeds(work: Path) -> dict[str, bytes]:
    from avatar.data.clip import save_clip

    save_clip(tiny_clip(), work / "c.npz")
    return {"c.npz": (work / "c.npz").read_bytes()}


def npz_seeds(name: str, make) -> Callable[[Path], dict[str, bytes]]:
    """Seeds of an npz target: the file's bytes (RAW) and structured-mutation seeds."""
    def seeds(work: Path) -> dict[str, bytes]:
        raw = make(work)[name]
        return {"raw-" + name: bytes([RAW]) + raw, "structured": bytes([STRUCTURED]) + os.urandom(64)}
    return seeds


SEEDS = {"image": image_seeds, "audio": audio_seeds, "video": video_seeds,
         "motion": npz_seeds("m.npz", motion_seeds), "checkpoint": checkpoint_seeds,
         "bundle": bundle_seeds, "clip": npz_seeds("c.npz", clip_seeds)}
MAX_LEN = {"image": 64 << 10, "audio": 32 << 10, "video": 48 << 10, "motion": 16 << 10,
           "checkpoint": 32 << 10, "bundle": 16 << 10, "clip": 128 << 10}


# == structured mutation of npz archives and their JSON ===================================
DTYPES = ("float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool", "complex64",
          "<U4", "S3")
ODD_JSON = (None, 0, -1, 1, 2 ** 63, -(2 ** 31), 1e308, -1e-9, float("nan"), float("inf"), "", "x" * 3,
            [], [1, 2], [[0, 1]], {}, {"a": 1}, True, [None], ["jawOpen"] * 3)
MAX_ELEMENTS = 4096  # a mutated array stays tiny: the loader, not the harness, must blow up


def odd_array(fdp):
    import numpy as np

    dtype = np.dtype(fdp.PickValueInList(list(DTYPES)))
    shape = tuple(fdp.ConsumeIntInRange(0, 6) for _ in range(fdp.ConsumeIntInRange(0, 4)))
    count = int(np.prod(shape))
    raw = fdp.ConsumeBytes(count * dtype.itemsize).ljust(count * dtype.itemsize, b"\0")
    return np.frombuffer(raw, dtype).reshape(shape)


def reshaped(array, fdp):
    """``array`` with one dimension changed (0, 1, one less/more, double) or one more axis."""
    import numpy as np

    array = np.asarray(array)
    if array.ndim == 0 or fdp.ConsumeBool():
        return array[None] if array.size < MAX_ELEMENTS else array.reshape(-1)[:1]
    axis = fdp.ConsumeIntInRange(0, array.ndim - 1)
    d = array.shape[axis]
    n = fdp.PickValueInList([0, 1, max(0, d - 1), d + 1, 2 * d])
    index = np.arange(n) % max(d, 1)
    return np.take(array, index, axis=axis) if d else np.zeros(array.shape[:axis] + (n,) + array.shape[axis + 1:])


def special_values(array, fdp):
    import numpy as np

    array = np.array(array)
    if array.dtype.kind in "fc":
        array.flat[fdp.ConsumeIntInRange(0, max(0, array.size - 1)):] = fdp.PickValueInList(
            [np.nan, np.inf, -np.inf, 1e30, -1.0])
    elif array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        array.flat[:] = fdp.PickValueInList([info.min, info.max, -1 if info.min else 0, 10 ** 6 % info.max])
    return array


def odd_json(value, fdp, depth: int = 0):
    """``value`` (JSON) with one entry deleted or replaced by an odd value, or replaced whole."""
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0 or depth > 3:
        return fdp.PickValueInList(list(ODD_JSON))
    if isinstance(value, dict) and value:
        key = fdp.PickValueInList(sorted(value))
        out = dict(value)
        if choice == 1:
            del out[key]
        else:
            out[key] = odd_json(value[key], fdp, depth + 1)
        return out
    if isinstance(value, list) and value:
        i = fdp.ConsumeIntInRange(0, len(value) - 1)
        return value[:i] + [odd_json(value[i], fdp, depth + 1)] + value[i + 1:]
    return fdp.PickValueInList(list(ODD_JSON))


def json_of(array):
    """The JSON value of a 0-d text array (an archive's ``meta``), None if it is not one."""
    import numpy as np

    if array is None or np.asarray(array).dtype.kind != "U" or np.ndim(array):
        return None
    try:
        return json.loads(str(array))
    except ValueError:
        return None


def mutate_arrays(arrays: dict, fdp) -> dict:
    """1-3 structural changes to the arrays of an archive (``meta``: JSON text)."""
    import numpy as np

    out = dict(arrays)
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        key = fdp.PickValueInList(sorted(out) + ["meta", "body", "hands", "upper_body", "body_reference"])
        op = fdp.ConsumeIntInRange(0, 5)
        meta = json_of(out.get(key)) if key == "meta" else None
        if meta is not None and op >= 2:
            out[key] = np.array(json.dumps(odd_json(meta, fdp)))
        elif op == 0:
            out.pop(key, None)
        elif op == 1 or key not in out:
            out[key] = odd_array(fdp)
        elif op == 2:
            out[key] = reshaped(out[key], fdp)
        elif op == 3 and np.asarray(out[key]).dtype.kind in "biuf":
            out[key] = np.asarray(out[key]).astype(fdp.PickValueInList(list(DTYPES[:8])))
        else:
            out[key] = special_values(out[key], fdp)
    return out


class HarnessError(RuntimeError):
    """A bug of this script while making an input, not a crash of the loader under test."""


def write_fuzzed(path: Path, base: bytes, data: bytes, json_file: bool = False) -> None:
    """``data`` = mode byte + payload: the file's bytes (RAW), or structural changes to
    ``base`` (an npz, or a JSON file) driven by the payload."""
    try:
        _write_fuzzed(path, base, data, json_file)
    except Exception as error:
        raise HarnessError(f"making the input failed: {error!r}") from error


def _write_fuzzed(path: Path, base: bytes, data: bytes, json_file: bool) -> None:
    import atheris
    import numpy as np

    mode, payload = (data[0] % 2, data[1:]) if data else (RAW, b"")
    if mode == RAW:
        path.write_bytes(payload)
        return
    fdp = atheris.FuzzedDataProvider(payload)
    if json_file:
        path.write_text(json.dumps(odd_json(json.loads(base), fdp)))
        return
    with np.load(io.BytesIO(base)) as archive:
        arrays = mutate_arrays(dict(archive), fdp)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# == the targets: fuzzed bytes -> file -> the loader the CLI calls ===========================
class Target:
    """Calls the loader of ``name`` on one input, in a working folder ``work``."""

    def __init__(self, name: str, work: Path, seeds: Path):
        self.name, self.work, self.seeds = name, work, seeds
        self.run = getattr(self, "run_" + name)
        if name == "bundle":
            self.bundle = tiny_bundle(work / "bundle")
            self.members = {m: (self.bundle / m).read_bytes() for m in BUNDLE_MEMBERS}
        if name in ("motion", "clip"):
            self.base = next(seeds.glob("raw-*")).read_bytes()[1:]

    def run_image(self, data: bytes) -> None:
        from avatar.image import MAX_VIDEO_SIDE, fit_max_size, load_image

        path = self.work / "photo"
        path.write_bytes(data)
        fit_max_size(load_image(path), MAX_VIDEO_SIDE)  # as load_portrait

    def run_audio(self, data: bytes) -> None:
        from avatar.audio.io import load_audio, resample
        from avatar.config import AUDIO, VIDEO

        path = self.work / "speech"
        path.write_bytes(data)
        resample(load_audio(path, VIDEO.audio_sample_rate), AUDIO.sample_rate)  # as load_speech

    def run_video(self, data: bytes, max_frames: int = 12) -> None:
        from avatar.config import AUDIO
        from avatar.video.reader import check_moving, iter_frames, probe, read_audio_track

        path = self.work / "video.mp4"
        path.write_bytes(data)
        info = probe(path)  # as dub / enroll / prepare
        check_moving(info, path)
        for i, _ in enumerate(iter_frames(path)):
            if i >= max_frames:
                break
        if info.has_audio:
            read_audio_track(path, AUDIO.sample_rate)

    def run_motion(self, data: bytes) -> None:
        from avatar.motion.io import curves, load_motion

        path = self.work / "motion.npz"
        write_fuzzed(path, self.base, data)
        curves(load_motion(path))

    def run_checkpoint(self, data: bytes) -> None:
        from avatar.diffusion.checkpoint import load_model, read_spec

        path = self.work / "model.safetensors"
        path.write_bytes(data)
        read_spec(path)  # as avatar train --init, before the dataset
        load_model(path)  # as --checkpoint

    def run_bundle(self, data: bytes) -> None:
        from avatar.gesture.bundle import load_bundle

        member = BUNDLE_MEMBERS[(data[0] // 2) % len(BUNDLE_MEMBERS)] if data else BUNDLE_MEMBERS[0]
        try:
            write_fuzzed(self.bundle / member, self.members[member], data, member.endswith(".json"))
            bundle = load_bundle(self.bundle)  # as speak --avatar / dub --avatar
            bundle.mouth_bank()
        finally:
            (self.bundle / member).write_bytes(self.members[member])

    def run_clip(self, data: bytes) -> None:
        from avatar.training.dataset import load_dataset

        folder = self.work / "dataset"
        folder.mkdir(exist_ok=True)
        write_fuzzed(folder / "c.npz", self.base, data)
        for clip in load_dataset(folder):  # as avatar train
            clip.split("train"), clip.split("val")


# == the worker: one target under libFuzzer =================================================
# Imported under atheris' instrumentation (coverage feedback for the loaders' branches).
LOADER_MODULES = ("avatar.fileio", "avatar.image", "avatar.audio.io", "avatar.video.reader", "avatar.motion.io",
                  "avatar.diffusion.checkpoint", "avatar.diffusion.edm", "avatar.diffusion.transformer",
                  "avatar.gesture.bundle", "avatar.render.mouth_bank", "avatar.body.types", "avatar.gesture.graph",
                  "avatar.data.clip", "avatar.training.dataset")
def crash_signature(error: BaseException) -> str:
    """Exception type + the innermost engine line it passed: one crash (the same bug raised
    from different lines of zipfile or PIL is still one bug of the loader)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if f"{os.sep}avatar{os.sep}" in f.filename] or frames
    return f"{type(error).__name__} {Path(ours[-1].filename).name}:{ours[-1].lineno}"


def cap_address_space() -> None:
    """Make huge allocations fail fast (MemoryError: a crash) instead of swapping."""
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    limit = size + ADDRESS_SPACE_MARGIN
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker(args, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["avatar"]):
        for module in LOADER_MODULES:
            importlib.import_module(module)
    from avatar.errors import AvatarError

    work = Path(tempfile.mkdtemp(dir=args.work))
    target = Target(args.worker, work, Path(args.seeds))
    crash_dir, stats = Path(args.crash_dir), Path(args.stats)
    seen: set[str] = set()
    count, last = [0], [time.monotonic()]

    def one_input(data: bytes) -> None:
        count[0] += 1
        if time.monotonic() - last[0] > STATS_EVERY:
            stats.write_text(str(count[0]))
            last[0] = time.monotonic()
        try:
            target.run(data)
        except AvatarError:
            pass  # the rule: a clean one-line error
        except HarnessError:
            raise  # stops the worker: fix this script
        except Exception as error:  # noqa: BLE001 - anything else is the crash we look for
            record_crash(crash_dir, args.worker, data, error, seen)

    cap_address_space()
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def record_crash(crash_dir: Path, target: str, data: bytes, error: BaseException, seen: set) -> None:
    signature = crash_signature(error)
    if signature in seen:
        return
    seen.add(signature)
    digest = hashlib.sha1(signature.encode()).hexdigest()[:10]
    path = crash_dir / f"{target}-{type(error).__name__}-{digest}"
    if not path.exists():
        path.write_bytes(data)
        path.with_suffix(".txt").write_text(signature + "\n\n" + "".join(
            traceback.format_exception(type(error), error, error.__traceback__)))
        print(f"CRASH {signature} -> {path}", file=sys.stderr, flush=True)


# == the driver ===============================================================================
def fuzz_target(name: str, seconds: float, args, tmp: Path) -> dict:
    """Run target ``name`` for ``seconds`` (restarting after hangs / memory kills)."""
    seeds = tmp / "seeds" / name
    seeds.mkdir(parents=True)
    make = SEEDS[name]
    for file, data in make(tmp).items():
        (seeds / file).write_bytes(data)
    corpus = Path(args.corpus_dir) / name if args.corpus_dir else tmp / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crash_dir = Path(args.crash_dir)
    crash_dir.mkdir(parents=True, exist_ok=True)
    before = set(crash_dir.glob(f"{name}-*"))
    start, runs, restarts = time.monotonic(), 0, 0
    while (left := seconds - (time.monotonic() - start)) > 2 and restarts <= MAX_RESTARTS:
        runs += run_worker(name, left, args, tmp, seeds, corpus)
        restarts += 1
    found = sorted(p for p in set(crash_dir.glob(f"{name}-*")) - before if p.suffix != ".txt")
    return {"target": name, "seconds": time.monotonic() - start, "iterations": runs,
            "crashes": [str(p) for p in found], "workers": restarts}


def run_worker(name: str, seconds: float, args, tmp: Path, seeds: Path, corpus: Path) -> int:
    """One libFuzzer process; returns the inputs it ran."""
    stats = tmp / f"stats-{name}"
    stats.write_text("0")
    command = [sys.executable, __file__, "--worker", name, "--seeds", str(seeds), "--work", str(tmp),
               "--crash-dir", args.crash_dir, "--stats", str(stats), "--",
               f"-max_total_time={int(seconds)}", f"-max_len={MAX_LEN[name]}", f"-timeout={args.timeout}",
               f"-rss_limit_mb={args.rss_limit_mb}", "-print_final_stats=1",
               f"-artifact_prefix={Path(args.crash_dir) / name}-", str(corpus), str(seeds)]
    proc = subprocess.run(command, capture_output=True, text=True, errors="replace")
    done = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    for line in proc.stderr.splitlines():
        if line.startswith(("CRASH", "==", "ALARM", "artifact_prefix")) or "Test unit written" in line:
            print(f"  [{name}] {line}", flush=True)
    if proc.returncode and not re.search(r"Test unit written", proc.stderr):
        print(f"  [{name}] worker exited with {proc.returncode}:\n" + proc.stderr[-3000:], flush=True)
    return int(done.group(1)) if done else int(stats.read_text() or 0)


def replay(args) -> None:
    """Run the input file(s) through one target and print what each does."""
    from avatar.errors import AvatarError

    with tempfile.TemporaryDirectory(prefix="fuzz-replay-") as tmp:
        tmp = Path(tmp)
        seeds = tmp / "seeds"
        seeds.mkdir()
        name = args.targets.split(",")[0]
        for file, data in SEEDS[name](tmp).items():
            (seeds / file).write_bytes(data)
        target = Target(name, tmp, seeds)
        for file in args.replay:
            try:
                target.run(Path(file).read_bytes())
                print(f"{file}: loads")
            except AvatarError as e:
                print(f"{file}: AvatarError: {e}")
            except Exception:  # noqa: BLE001 - shown, it is what we look for
                print(f"{file}: CRASH\n{traceback.format_exc()}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    libfuzzer_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds-per-target", type=float, default=60)
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of: {', '.join(TARGETS)}")
    p.add_argument("--corpus-dir", help="keep each target's corpus in DIR/TARGET (default: a temp folder)")
    p.add_argument("--crash-dir", default=str(DEFAULT_CRASH_DIR))
    p.add_argument("--timeout", type=int, default=10, help="seconds one input may take (a hang)")
    p.add_argument("--rss-limit-mb", type=int, default=3000)
    p.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs through the (first) target")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seeds", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--stats", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args, libfuzzer_args)
    if args.replay:
        return replay(args)
    names = [t for t in args.targets.split(",") if t]
    unknown = set(names) - set(TARGETS)
    if unknown:
        p.error(f"unknown target(s) {', '.join(sorted(unknown))}; known: {', '.join(TARGETS)}")
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-loaders-"))
    try:
        results = []
        for name in names:
            print(f"fuzzing {name} for {args.seconds_per_target:g} s", flush=True)
            results.append(fuzz_target(name, args.seconds_per_target, args, tmp))
            report(results[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(len(r["crashes"]) for r in results)
    print(f"total: {sum(r['iterations'] for r in results)} iterations in "
          f"{sum(r['seconds'] for r in results):.0f} s, {total} unique crash(es)")


def report(result: dict) -> None:
    print(f"{result['target']}: {result['iterations']} iterations in {result['seconds']:.0f} s "
          f"({result['workers']} worker run(s)), {len(result['crashes'])} unique crash(es)")
    for path in result["crashes"]:
        print(f"  {path}")


if __name__ == "__main__":
    main()
