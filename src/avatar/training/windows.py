"""Training windows cut from prepared clips: motion, audio and global conditions.

A window is N frames plus the K frames before it (the previous-window prefix of VASA-1
§3.2: motion and audio). Windows come only from frames of one split, never across:

- "train": the clip's training frames minus a selection block;
- "select": the last SELECT_FRACTION of each clip's training frames, never trained on;
  the training loop picks its checkpoint here, so the held-out validation ranges stay
  untouched for evaluation (avatar evaluate);
- "val": the clip's held-out validation ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.generators.vasa import audio_frames, emotion_proxy, global_conditions, motion_to_array

SELECT_FRACTION = 0.1

@dataclass
class WindowSource:
    """The arrays of one clip that windows are cut from."""

    motion: np.ndarray  # (T, C)
    audio: np.ndarray  # (T, Ca)
    allowed: np.ndarray  # (T,) bool: frames of the requested split
    seq: object  # the clip's MotionSeq, for the emotion stand-ins


def split_mask(clip, split: str) -> np.ndarray:
    """(T,) bool frames of ``split`` ("train", "select" or "val") in a clip."""
    if split == "val":
        return np.asarray(clip.val_mask(), bool)
    train = np.asarray(clip.train_mask(), bool)
    frames = np.flatnonzero(train)
    select = np.zeros_like(train)
    select[frames[len(frames) - int(round(SELECT_FRACTION * len(frames))):]] = True
    return select if split == "select" else train & ~select


def sources(clips, split: str) -> list[WindowSource]:
    out = []
    for clip in clips:
        allowed = split_mask(clip, split)
        out.append(WindowSource(motion_to_array(clip.motion), audio_frames(clip.features),
                                np.asarray(allowed, bool), clip.motion))
    return out


def window_starts(src: WindowSource, N: int, K: int) -> np.ndarray:
    """Starts s with frames [s, s + N) all allowed (the prefix is used where allowed)."""
    ok = src.allowed.astype(np.int64)
    run = np.convolve(ok, np.ones(N, np.int64), mode="valid")  # allowed frames in [s, s+N)
    return np.flatnonzero(run == N)


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
        v, a = emotion_proxy(window)
        glob.append(global_conditions(window.gaze.mean(0), float(window.scale.mean()), v, a))
    globals_ = {k: np.stack([g[k] for g in glob]) for k in glob[0]}
    return Batch(np.stack(motion), np.stack(prefix), np.array(has), np.stack(audio), globals_)
