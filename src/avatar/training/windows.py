"""Training windows cut from prepared clips: motion, audio and global conditions.

A window is N frames plus the K frames before it (the previous-window prefix of VASA-1
§3.2: motion and audio). Windows come only from frames of one split, never across:

- "train": the clip's training frames minus a selection block;
- "select": never trained on; the training loop picks its checkpoint here, so the
  held-out validation ranges stay untouched for evaluation (avatar evaluate). It is a
  block at the end of each clip's training frames (the last SELECT_FRACTION, but at least
  one window) in clips with SELECT_MIN_WINDOWS windows of training frames or more; when
  no clip is that long (a dataset of short clips), every SELECT_CLIP_EVERY-th clip that
  holds a window gives all its training frames instead;
- "val": the clip's held-out validation ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.errors import AvatarError
from avatar.generators.motion_vector import audio_frames, emotion_proxy, global_conditions, motion_to_array

SELECT_FRACTION = 0.1
SELECT_MIN_WINDOWS = 3  # a clip gives a selection block only if it has this many windows of frames
SELECT_CLIP_EVERY = 10
FIXED_WINDOWS = 64  # windows (with repeats) in a fixed batch that a loss is measured on


@dataclass
class WindowSource:
    """The arrays of one clip that windows are cut from."""

    motion: np.ndarray  # (T, C)
    audio: np.ndarray  # (T, Ca)
    allowed: np.ndarray  # (T,) bool: frames of the requested split
    seq: object  # the clip's MotionSeq, for the emotion stand-ins


def split_masks(clips, window: int) -> list[dict[str, np.ndarray]]:
    """Per clip, (T,) bool frames of each split ("train", "select", "val") for windows of
    ``window`` frames."""
    out = []
    for clip in clips:
        train = np.asarray(clip.train_mask(), bool)
        frames = np.flatnonzero(train)
        select = np.zeros_like(train)
        if len(frames) >= SELECT_MIN_WINDOWS * window:
            select[frames[len(frames) - max(int(round(SELECT_FRACTION * len(frames))), window):]] = True
        out.append({"train": train, "select": select, "val": np.asarray(clip.val_mask(), bool)})
    if not any(m["select"].any() for m in out):  # only short clips: hold out whole ones
        usable = [m for m in out if m["train"].sum() >= window]
        if len(usable) >= 2:
            for m in usable[::SELECT_CLIP_EVERY]:
                m["select"] = m["train"].copy()
    for m in out:
        m["train"] = m["train"] & ~m["select"]
    return out


def sources(clips, split: str, window: int) -> list[WindowSource]:
    out = []
    for clip, masks in zip(clips, split_masks(clips, window)):
        out.append(WindowSource(motion_to_array(clip.motion), audio_frames(clip.features), masks[split], clip.motion))
    return out


def window_splits(clips, N: int):
    """(sources, picks): per split ("train", "select", "val") its WindowSources and every
    (clip index, start) of a window of N frames in them."""
    srcs = tuple(sources(clips, split, N) for split in ("train", "select", "val"))
    return srcs, tuple(all_starts(s, N) for s in srcs)


def window_starts(src: WindowSource, N: int, K: int) -> np.ndarray:
    """Starts s with frames [s, s + N) all allowed (the prefix is used where allowed)."""
    ok = src.allowed.astype(np.int64)
    run = np.convolve(ok, np.ones(N, np.int64), mode="valid")  # allowed frames in [s, s+N)
    return np.flatnonzero(run == N)


def all_starts(srcs: list[WindowSource], N: int) -> list[tuple[int, int]]:
    """Every (clip index, start) of a window of N frames in ``srcs``."""
    return [(i, int(s)) for i, src in enumerate(srcs) for s in window_starts(src, N, 0)]


def check_windows(train_picks, select_picks, N: int, fps: float) -> None:
    """AvatarError when a dataset gives no training window or nothing to select on."""
    if not train_picks:
        raise AvatarError(f"no training window of {N} frames in the dataset", None,
                          "prepare longer videos, or more of them")
    if not select_picks:
        raise AvatarError("nothing to choose the checkpoint on: it needs one clip with "
                          f"{SELECT_MIN_WINDOWS * N / fps:g} s of training frames, or two clips", None,
                          "prepare longer videos, or more of them")


def fixed_picks(picks: list, rng: np.random.Generator, n: int = FIXED_WINDOWS) -> list:
    """``n`` of ``picks`` to measure a loss on: all of them when there are fewer (each used
    several times, so it is measured at several noise levels), else a random subset."""
    if len(picks) >= n:
        idx = rng.choice(len(picks), size=n, replace=False)
    else:
        idx = np.resize(np.arange(len(picks)), n)
    return [picks[i] for i in idx]


def _lead_in_audio(audio: np.ndarray, s: int, N: int, K: int) -> np.ndarray:
    """(K+N, Ca) audio of frames [s-K, s+N); before the clip's start, its first frame."""
    idx = np.clip(np.arange(s - K, s + N), 0, len(audio) - 1)
    return audio[idx]


@dataclass
class Batch:
    motion: np.ndarray  # (B, N, C)
    prefix: np.ndarray  # (B, K, C)
    has_prefix: np.ndarray  # (B,) bool
    audio: np.ndarray  # (B, K+N, Ca): the window's audio and the K frames before it
    globals_: dict  # name -> (B, Cg)


def window_conditions(window) -> dict[str, np.ndarray]:
    """The global conditions a stretch of real motion (MotionSeq) is trained with: its mean
    gaze and head distance, and the valence/arousal stand-ins."""
    v, a = emotion_proxy(window)
    return global_conditions(window.gaze.mean(0), float(window.scale.mean()), v, a)


def cut(srcs: list[WindowSource], picks: list[tuple[int, int]], N: int, K: int) -> Batch:
    """The windows (clip index, start) as one batch."""
    motion, prefix, has, audio, glob = [], [], [], [], []
    for i, s in picks:
        src = srcs[i]
        window = src.seq.slice(s, s + N)
        motion.append(src.motion[s:s + N])
        audio.append(_lead_in_audio(src.audio, s, N, K))
        ok = s >= K and src.allowed[s - K:s].all()
        prefix.append(src.motion[s - K:s] if ok else np.zeros((K, src.motion.shape[1]), np.float32))
        has.append(ok)
        glob.append(window_conditions(window))
    globals_ = {k: np.stack([g[k] for g in glob]) for k in glob[0]}
    return Batch(np.stack(motion), np.stack(prefix), np.array(has), np.stack(audio), globals_)
