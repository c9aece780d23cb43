"""Motion graph benchmark (TANGO §3.1, §3.2): build, prune, dead-end walks, DP retrieval.

    python benchmarks/bench_graph.py [tracks.npz] [--fps 30] [--seconds 180] [--speech 60]

``tracks.npz`` holds per-frame arrays: positions (T, J, 3), velocities (T, J, 3), masks
(T, mh, mw) bool or uint8 0..255, hand_boxes (T, 2, 4) px (NaN unseen), segment (T,) int
and optionally fps () (it overrides --fps).
Without it, a synthetic smooth random trajectory of ``--seconds`` is made (a stand-in
until real tracks exist). Prints nodes/edges before and after pruning, the dead-end
probability of 10 s and 30 s random walks before and after, and the time of each stage.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatar.config import GESTURE
from avatar.gesture.graph import balanced_distance, build_graph, node_distances, node_starts
from avatar.gesture.prune import prune
from avatar.gesture.retrieval import best_path, count_jumps
from avatar.gesture.walks import dead_end_probability

WALK_SECONDS = (10.0, 30.0)  # TANGO §3.1 reports dead ends of 10 s and 30 s walks
NUM_WALKS = 1000
SYNTH_JOINTS = 33  # MediaPipe pose landmarks
SYNTH_VIDEO = (1080, 1920)  # portrait video (width, height) px, like the upper-body clips
SYNTH_SEGMENTS = 3  # shots in the synthetic footage
GESTURE_SECONDS = 0.4  # smoothing of the synthetic hand trajectories
REST_SECONDS = 1.5  # smoothing of the synthetic gesture / rest alternation
HAND_REACH = 0.25  # metres of synthetic hand motion (1 sd)
HAND_BOX = 0.06  # hand box half size, as a fraction of the video width
BODY_AXES = (0.3, 0.35)  # torso ellipse half axes, fractions of the mask width / height
HAND_DISC = 0.08  # hand disc radius in the mask, fraction of the mask width


@dataclass
class Tracks:
    positions: np.ndarray  # (T, J, 3) root-relative metres
    velocities: np.ndarray  # (T, J, 3) metres / s
    masks: np.ndarray  # (T, mh, mw) bool
    hand_boxes: np.ndarray  # (T, 2, 4) x0, y0, x1, y1 px, NaN unseen
    segment: np.ndarray  # (T,) int
    fps: float


def synthetic_tracks(seconds: float, fps: float, seed: int = 0) -> Tracks:
    """A seated person whose two hands wander smoothly; arms follow the hands."""
    rng = np.random.default_rng(seed)
    t = round(seconds * fps)
    hands = gaussian_filter1d(rng.normal(size=(t, 2, 3)), GESTURE_SECONDS * fps, axis=0)
    gate = gaussian_filter1d(rng.normal(size=(t, 1, 1)), REST_SECONDS * fps, axis=0) > 0  # gesturing
    hands = gaussian_filter1d(hands * gate, GESTURE_SECONDS * fps / 2, axis=0)  # back to rest between
    hands *= HAND_REACH / hands.std()  # (T, 2, 3)
    base = rng.normal(scale=0.3, size=(SYNTH_JOINTS, 3))
    follow = rng.random((SYNTH_JOINTS, 2)) * (rng.random((SYNTH_JOINTS, 1)) < 0.5)  # (J, 2) arm joints
    positions = base + np.einsum("jh,thc->tjc", follow, hands)  # (T, J, 3)
    velocities = np.gradient(positions, axis=0) * fps
    width, height = SYNTH_VIDEO
    centre = np.array([0.5, 0.6]) + hands[..., :2] * [0.8, 0.5]  # (T, 2, 2) fraction of the frame
    mw = GESTURE.mask_width
    mh = round(mw * height / width)
    yy, xx = np.mgrid[0:mh, 0:mw] / [[[mh]], [[mw]]]
    masks = ((xx - 0.5) / BODY_AXES[0]) ** 2 + ((yy - 0.8) / BODY_AXES[1]) ** 2 < 1.0  # (mh, mw)
    masks = np.repeat(masks[None], t, axis=0)
    for hand in range(2):
        cx, cy = centre[:, hand, 0, None, None], centre[:, hand, 1, None, None]
        masks |= ((xx - cx) * mw) ** 2 + ((yy - cy) * mh) ** 2 < (HAND_DISC * mw) ** 2
    half = HAND_BOX * width
    px = centre * [width, height]  # (T, 2, 2)
    boxes = np.concatenate([px - half, px + half], axis=-1)  # (T, 2, 4)
    boxes[(centre[..., 1] > 1.0)] = np.nan  # below the frame: unseen
    segment = np.minimum(np.arange(t) * SYNTH_SEGMENTS // t, SYNTH_SEGMENTS - 1)
    return Tracks(positions, velocities, masks, boxes, segment, fps)


def load_tracks(path: str, fps: float) -> Tracks:
    """Arrays from ``path``; its "fps" key, if any, wins over ``fps``."""
    with np.load(path) as arrays:
        fps = float(arrays["fps"]) if "fps" in arrays else fps
        return Tracks(arrays["positions"], arrays["velocities"], arrays["masks"], arrays["hand_boxes"],
                      arrays["segment"], fps)


def timed(label: str, timings: dict[str, float], fn):
    t0 = time.perf_counter()
    out = fn()
    timings[label] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tracks", nargs="?", help=".npz of per-frame arrays (default: synthetic)")
    ap.add_argument("--fps", type=float, default=GESTURE.reference_fps)
    ap.add_argument("--seconds", type=float, default=180.0, help="synthetic footage length")
    ap.add_argument("--speech", type=float, default=60.0, help="seconds of speech for the DP timing")
    ap.add_argument("--balanced", action="store_true",
                    help="edges from balanced_distance instead of the paper's d_pose + d_iou")
    ap.add_argument("--penalty", type=float, default=0.5, help="jump penalty for the DP timing")
    args = ap.parse_args()
    if args.tracks:
        tracks = load_tracks(args.tracks, args.fps)
    else:
        tracks = synthetic_tracks(args.seconds, args.fps)
    timings: dict[str, float] = {}
    starts, segment = node_starts(tracks.segment)
    d_pose, d_iou = timed("distances", timings, lambda: node_distances(
        tracks.positions, tracks.velocities, tracks.masks, tracks.hand_boxes, starts))
    distance = balanced_distance(d_pose, d_iou, starts, segment) if args.balanced else d_pose + d_iou
    raw = timed("build", timings, lambda: build_graph(distance, starts, segment))
    pruned, report = timed("prune", timings, lambda: prune(raw))
    print(f"{len(tracks.segment)} frames at {tracks.fps:g} fps, {tracks.positions.shape[1]} joints, "
          f"masks {tracks.masks.shape[1:]}")
    print(f"nodes {report.nodes_before} -> {report.nodes_after}, edges {report.edges_before} -> "
          f"{report.edges_after} (dead ends removed {report.dead_ends}, components {report.components})")
    print(f"mean out-degree {raw.num_edges / max(raw.num_nodes, 1):.1f} -> "
          f"{pruned.num_edges / max(pruned.num_nodes, 1):.1f}")
    for seconds in WALK_SECONDS:
        before = dead_end_probability(raw, seconds, tracks.fps, walks=NUM_WALKS)
        after = dead_end_probability(pruned, seconds, tracks.fps, walks=NUM_WALKS)
        print(f"P(dead end) of {seconds:g} s walks: {before:.1%} before, {after:.1%} after pruning")
    slots = round(args.speech * tracks.fps / GESTURE.node_frames)
    scores = np.random.default_rng(0).random((slots, pruned.num_nodes))
    path = timed("retrieval", timings, lambda: best_path(pruned, scores, args.penalty))
    print(f"retrieval: {slots} slots x {pruned.num_nodes} nodes, {count_jumps(pruned, path)} jumps")
    print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))


if __name__ == "__main__":
    main()
