"""Re-render the mouth of a real video's frames to new speech (TANGO §2 lip sync) and measure it.

    python benchmarks/bench_reenact.py [--video V ...] [--max-frames 240] [--out-dir /tmp/tango]

Per video: track every frame (MediaPipe face mesh, video mode), build the mouth bank from
them (the enrollment), synthesise speech with the built-in TTS at the video's frame rate,
drive the mouth with the rules generator and re-render every frame with
avatar.render.reenact.FaceReRenderer. Prints the re-render cost per frame (one thread), and
lip sync measured by tracking the OUTPUT frames: the share of p/b/m phones with the lips
closed and the opening~loudness correlation (as benchmarks/bench_lipsync.py does for the
photo path), next to the same figures for the untouched frames (what the lips did before).
Writes a PNG sheet of mouth crops (source | synthetic interior | bank interior) per video.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avatar.audio.speech import load_speech
from avatar.face import topology as topo
from avatar.face.tracker import FaceTracker
from avatar.generators.base import Controls
from avatar.generators.registry import get_generator
from avatar.metrics.lipsync import bilabial_closure, mouth_opening, opening_energy_correlation
from avatar.render.mouth_bank import MouthBankBuilder
from avatar.render.reenact import MIN_OPEN_FOR_BANK, FaceReRenderer, mouth_actions
from avatar.video.reader import iter_frames, probe

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "upper_body"  # development media only; pass --video to override
VIDEOS = [DATA / "ub06_tv_host_desk_7s.mp4", DATA / "ub01_young_man_sofa_gestures_1080x1920_20s.mp4"]
TEXT = ("Maybe my mom bought a big blue umbrella. Bob and Pam met him by the pump. "
        "Please move the map above the bed, then open both windows for me.")
SMOOTH_FRAMES = 1.0  # sigma (frames) of the landmarks' temporal smoothing, as the gesture path does
SHEET_ROWS = 12  # crops on the sheet
CROP_FACE_WIDTHS = (1.1, 0.75)  # (w, h) of a crop around the mouth, in face widths
CROP_ABOVE = 0.4  # share of a crop above the mouth's centre
CROP_HEIGHT_PX = 160  # sheet rows are scaled to this height
MISSING = np.nan  # landmarks of frames without a face


@dataclass
class Tracked:
    landmarks: np.ndarray  # (T, 478, 3), NaN where no face
    fps: float


def track(path: Path, max_frames: int, builder: MouthBankBuilder | None) -> Tracked:
    """Landmarks of the first ``max_frames`` frames; every frame is offered to ``builder``."""
    rows = []
    with FaceTracker(static=False, max_faces=1) as tracker:
        for i, frame in enumerate(iter_frames(path)):
            if i >= max_frames:
                break
            faces = tracker.detect(frame)
            rows.append(faces[0].landmarks if faces else np.full((topo.NUM_LANDMARKS, 3), MISSING, np.float32))
            if faces and builder is not None:
                builder.add(frame, faces[0].landmarks)
    return Tracked(np.stack(rows), probe(path).fps)


def smooth(landmarks: np.ndarray) -> np.ndarray:
    """(T, 478, 3) landmarks smoothed along time (tracker jitter would make the mouth shimmer)."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(landmarks.astype(np.float64), SMOOTH_FRAMES, axis=0, mode="nearest")


def mouth_crop(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A crop around the mouth, scaled to CROP_HEIGHT_PX."""
    fw = float(np.linalg.norm(landmarks[topo.CHEEK_L, :2] - landmarks[topo.CHEEK_R, :2]))
    cx, cy = landmarks[[topo.UPPER_LIP_BOTTOM, topo.LOWER_LIP_TOP], :2].mean(0)
    w, h = CROP_FACE_WIDTHS[0] * fw, CROP_FACE_WIDTHS[1] * fw
    x0, y0 = int(max(cx - w / 2, 0)), int(max(cy - CROP_ABOVE * h, 0))
    crop = frame[y0: int(y0 + h), x0: int(x0 + w)]
    scale = CROP_HEIGHT_PX / crop.shape[0]
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


@dataclass
class Rendered:
    """What re-rendering one video produced."""

    wall: np.ndarray  # (T,) seconds per frame
    cpu: np.ndarray  # (T,) CPU seconds per frame (this thread)
    output: np.ndarray  # (T, 478, 3) landmarks tracked on the output frames
    intended: np.ndarray  # (T,) mouth opening the renderer aimed at, face widths
    entries: list  # (T,) bank entry after each frame (None: none yet)
    sheet: list  # rows of crops: source | synthetic interior | bank interior


def run(path: Path, max_frames: int, out_dir: Path) -> None:
    builder = MouthBankBuilder()
    t0 = time.perf_counter()
    tracked = track(path, max_frames, builder)
    bank = builder.build()
    print(f"{path.name}: tracked {len(tracked.landmarks)} frames in {time.perf_counter() - t0:.1f} s; "
          f"mouth bank {len(bank)} entries, rest face {'yes' if bank.rest is not None else 'no'}")
    speech, features = load_speech(text=TEXT, fps=tracked.fps)
    mouth = get_generator("rules").generate(speech, features, Controls(), seed=0)
    n = min(len(mouth), len(tracked.landmarks))
    result = render_video(path, smooth(tracked.landmarks[:n]), mouth, bank)
    report(result, tracked.landmarks[:n], speech, features, tracked.fps)
    sheet = out_dir / f"reenact_{path.stem.split('_')[0]}.png"
    width = min(r.shape[1] for r in result.sheet)
    cv2.imwrite(str(sheet), cv2.cvtColor(np.concatenate([r[:, :width] for r in result.sheet]), cv2.COLOR_RGB2BGR))
    print(f"  sheet (source | synthetic interior | bank interior): {sheet}")


def render_video(path: Path, faces: np.ndarray, mouth, bank) -> Rendered:
    """Re-render the first len(faces) frames; track every output frame."""
    from threadpoolctl import threadpool_limits

    n = len(faces)
    lips, synthetic = FaceReRenderer(bank), FaceReRenderer(rest=bank.rest)
    sheet_at = set(np.linspace(0, n - 1, SHEET_ROWS).round().astype(int).tolist())
    res = Rendered(np.zeros(n), np.zeros(n), np.zeros((n, topo.NUM_LANDMARKS, 3)), np.zeros(n), [], [])
    with FaceTracker(static=True, max_faces=1) as judge, threadpool_limits(limits=1):
        for i, frame in zip(range(n), iter_frames(path)):
            start, start_cpu = time.perf_counter(), time.thread_time()
            out = lips.render(frame, faces[i], mouth[i])
            res.wall[i], res.cpu[i] = time.perf_counter() - start, time.thread_time() - start_cpu
            res.output[i] = _landmarks(judge, out)
            res.entries.append(lips.bank_entry)
            target = lips.target(lips.face(faces[i]), mouth_actions(mouth[i]))[1]
            res.intended[i] = mouth_opening(target[None])[0]
            if i in sheet_at and np.isfinite(faces[i]).all():
                plain = synthetic.render(frame, faces[i], mouth[i])
                res.sheet.append(np.concatenate([mouth_crop(im, faces[i]) for im in (frame, plain, out)], 1))
    return res


def _landmarks(tracker: FaceTracker, frame: np.ndarray) -> np.ndarray:
    faces = tracker.detect(frame)
    return faces[0].landmarks if faces else np.full((topo.NUM_LANDMARKS, 3), MISSING, np.float32)


def report(res: Rendered, source: np.ndarray, speech, features, fps) -> None:
    ms, cpu_ms = 1000 * res.wall, 1000 * res.cpu
    print(f"  re-render, one thread: CPU {cpu_ms.mean():.1f} ms/frame mean, {np.percentile(cpu_ms, 90):.1f} p90; "
          f"wall {ms.mean():.1f} mean, {np.median(ms):.1f} median (wall grows with the machine's load)")
    for label, opening in (("output", mouth_opening(res.output)), ("source frames", mouth_opening(source)),
                           ("intended", res.intended)):
        ok = ~np.isnan(opening)
        closure, count = bilabial_closure(np.where(ok, opening, np.inf), speech.phones, fps)
        corr = opening_energy_correlation(opening[ok], features.energy[: len(opening)][ok])
        print(f"  {label}: p/b/m closed {100 * closure:.0f}% of {count}; opening~loudness r = {corr:.2f}; "
              f"tracked {100 * ok.mean():.0f}% of {len(opening)} frames")
    opening = mouth_opening(res.output)
    ok = ~np.isnan(opening)
    r = np.corrcoef(opening[ok], res.intended[ok])[0, 1]
    print(f"  tracked output opening vs intended: r = {r:.2f}, mean |difference| "
          f"{np.abs(opening[ok] - res.intended[ok]).mean():.3f} face widths; intended opening~loudness "
          f"r = {opening_energy_correlation(res.intended, features.energy):.2f} (the generator's own)")
    shown = res.intended > MIN_OPEN_FOR_BANK  # frames that paint an interior
    e = res.entries
    switches = sum(e[i] != e[i - 1] for i in range(1, len(e)) if shown[i] and shown[i - 1])
    print(f"  {switches} bank-entry switches between consecutive open frames ({shown.sum()} open of "
          f"{len(e)}; each cross-fades)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", nargs="*", type=Path, default=VIDEOS)
    ap.add_argument("--max-frames", type=int, default=240, help="frames tracked and re-rendered per video")
    ap.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "tango")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for video in args.video:
        run(video, args.max_frames, args.out_dir)


if __name__ == "__main__":
    main()
