"""Audio-motion retrieval accuracy (TANGO §4.3, Table 3).

- Low level: for an audio frame i, among the motion frames near i pick the one with the
  highest score (cosine similarity of the low-level embeddings); correct if it is close to
  i. The paper searches (i - 16, i + 16) and accepts (i - 4, i + 4) at 30 fps and quotes
  25 % for random picks: that is 8 of 32 candidates, so here both ranges are half-open,
  [i - S, i + S) and [i - H, i + H), S and H scaled to the video's fps. Averaged over
  many random i (16000 in the paper); only frames whose whole search range is usable
  count as queries.
- High level: one audio window's CLS embedding against 256 motion-window CLS candidates
  (the paired one + 255 others); correct if the paired one has the highest cosine.
  Random: 1 / 256 = 0.39 %. Averaged over many queries (3000 in the paper).

Also the GVR-style onset baseline of Table 3 (35.38 % in the paper) for the low level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from avatar.config import GESTURE

SEARCH_FRAMES = 16  # low-level search range +-16 frames at GESTURE.reference_fps (§4.3)
HIT_FRAMES = 4  # ... correct within +-4 frames
LOW_QUERIES = 16000  # paper: 16000 random audio frames
HIGH_QUERIES = 3000  # paper: 3000 random audio windows
HIGH_CANDIDATES = 256  # paper: 1 paired + 255 other motion windows
# Equal scores are broken at random (jitter far below any real score difference): breaking
# them towards the query frame would reward a score that says nothing.
TIE_JITTER = 1e-9
# Onsets / beats: local maxima of at least EVENT_SHARE of the signal's robust peak value
# (its EVENT_PEAK_PERCENTILE), so small wiggles of a smooth signal are not events.
EVENT_SHARE = 0.3
EVENT_PEAK_PERCENTILE = 99
NORM_FLOOR = 1e-12  # zero vectors stay zero when made unit length


@dataclass
class RetrievalResult:
    """Accuracy of one retrieval test, with the chance level of the same queries."""

    hits: int
    queries: int
    chance: float  # expected accuracy of random picks over the same queries

    @property
    def accuracy(self) -> float:
        return self.hits / self.queries if self.queries else float("nan")

    @staticmethod
    def combine(results: Sequence["RetrievalResult"]) -> "RetrievalResult":
        """Pool several results (e.g. held-out folds): hits and queries add up."""
        queries = sum(r.queries for r in results)
        chance = sum(r.chance * r.queries for r in results) / queries if queries else float("nan")
        return RetrievalResult(sum(r.hits for r in results), queries, chance)


@dataclass(frozen=True)
class LowLevelRange:
    """Low-level search and hit half-widths in frames at one fps."""

    search: int  # candidates j in [i - search, i + search)
    hit: int  # correct if j in [i - hit, i + hit)

    @classmethod
    def for_fps(cls, fps: float) -> "LowLevelRange":
        scale = fps / GESTURE.reference_fps
        return cls(max(2, round(SEARCH_FRAMES * scale)), max(1, round(HIT_FRAMES * scale)))

    @property
    def offsets(self) -> np.ndarray:
        """(2 S,) candidate offsets j - i."""
        return np.arange(-self.search, self.search)

    @property
    def chance(self) -> float:
        return self.hit / self.search


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), NORM_FLOOR)


def _query_frames(valid: np.ndarray, reach: LowLevelRange, queries: int | None,
                  rng: np.random.Generator) -> np.ndarray:
    """Frames i whose whole search range is usable; all of them, or ``queries`` random ones."""
    T = len(valid)
    i = np.arange(reach.search, T - reach.search + 1)  # (Q,)
    if len(i):
        window = i[:, None] + reach.offsets[None]  # (Q, 2S)
        i = i[valid[window].all(1) & valid[i]]
    if queries is not None and len(i) > queries:
        i = np.sort(rng.choice(i, size=queries, replace=False))
    return i


def _low_level(score: Callable[[np.ndarray, np.ndarray], np.ndarray], T: int, fps: float,
               valid: np.ndarray | None, queries: int | None, seed: int) -> RetrievalResult:
    """Low-level accuracy of ``score(i (Q,), j (Q, 2S)) -> (Q, 2S)``."""
    reach = LowLevelRange.for_fps(fps)
    valid = np.ones(T, bool) if valid is None else np.asarray(valid, bool)
    i = _query_frames(valid, reach, queries, np.random.default_rng(seed + 1))
    if len(i) == 0:
        return RetrievalResult(0, 0, reach.chance)
    j = i[:, None] + reach.offsets[None]  # (Q, 2S)
    rng = np.random.default_rng(seed)
    scores = score(i, j) + TIE_JITTER * rng.random(j.shape)  # (Q, 2S)
    picked = reach.offsets[scores.argmax(1)]  # (Q,) offsets of the best candidates
    hits = int(((picked >= -reach.hit) & (picked < reach.hit)).sum())
    return RetrievalResult(hits, len(i), reach.chance)


def low_level_accuracy(audio: np.ndarray, motion: np.ndarray, fps: float, valid: np.ndarray | None = None,
                       queries: int | None = LOW_QUERIES, seed: int = 0) -> RetrievalResult:
    """Low-level retrieval accuracy of paired per-frame embeddings audio, motion (T, D);
    ``valid`` (T,) marks usable frames (e.g. held-out ones); ``queries`` None: every frame."""
    a, m = _unit(audio), _unit(motion)
    return _low_level(lambda i, j: np.einsum("qd,qkd->qk", a[i], m[j]), len(a), fps, valid, queries, seed)


def _events(strength: np.ndarray) -> np.ndarray:
    """Frames (E,) of strong local maxima of ``strength`` (T,): at least both neighbours and
    EVENT_SHARE of the robust peak, and above 0."""
    x = np.asarray(strength, np.float64)
    padded = np.concatenate([[-np.inf], x, [-np.inf]])
    peak = (x >= padded[:-2]) & (x >= padded[2:]) & (x > 0)
    return np.flatnonzero(peak & (x >= EVENT_SHARE * np.percentile(x, EVENT_PEAK_PERCENTILE)))


def _event_phase(strength: np.ndarray, cap: int) -> np.ndarray:
    """(T,) signed frames from the nearest event of ``strength`` (T,), clipped to +-cap."""
    events = _events(strength)
    T = len(strength)
    if len(events) == 0:
        return np.full(T, cap, np.float64)
    frames = np.arange(T)
    after = np.clip(np.searchsorted(events, frames), 0, len(events) - 1)
    before = np.clip(after - 1, 0, len(events) - 1)
    d = np.stack([frames - events[before], frames - events[after]])  # (2, T)
    return np.clip(d[np.abs(d).argmin(0), frames], -cap, cap).astype(np.float64)


def motion_beat_strength(speed: np.ndarray) -> np.ndarray:
    """(T,) beat strength of a motion from its speed (T,): how much the speed drops into
    and rises out of each frame (GVR/BC: gesture beats are velocity minima), >= 0."""
    s = np.asarray(speed, np.float64)
    padded = np.concatenate([s[:1], s, s[-1:]])
    return np.maximum(padded[:-2] - s, 0.0) + np.maximum(padded[2:] - s, 0.0)


def onset_baseline_accuracy(onset: np.ndarray, speed: np.ndarray, fps: float, valid: np.ndarray | None = None,
                            queries: int | None = LOW_QUERIES, seed: int = 0) -> RetrievalResult:
    """GVR-style low-level baseline (TANGO Table 3 "Onset", after Zhou et al. 2022: audio
    onsets go with gesture beats): audio frame i is described by its signed distance to the
    nearest audio onset, motion frame j by its signed distance to the nearest motion beat
    (speed minimum); the motion frame with the closest distance is picked. onset, speed (T,)."""
    cap = LowLevelRange.for_fps(fps).search
    a = _event_phase(onset, cap)
    m = _event_phase(motion_beat_strength(speed), cap)
    return _low_level(lambda i, j: -np.abs(a[i][:, None] - m[j]), len(a), fps, valid, queries, seed)


def overlap_exclusion(groups: np.ndarray, starts: np.ndarray, min_separation: int) -> np.ndarray:
    """(N, N) bool: window pairs of the same group (video) starting fewer than
    ``min_separation`` frames apart; such near-copies are not used as negatives."""
    groups, starts = np.asarray(groups), np.asarray(starts)
    same = groups[:, None] == groups[None]
    return same & (np.abs(starts[:, None] - starts[None]) < min_separation)


def high_level_accuracy(audio: np.ndarray, motion: np.ndarray, exclude: np.ndarray | None = None,
                        candidates: int = HIGH_CANDIDATES, queries: int = HIGH_QUERIES, seed: int = 0,
                        query_mask: np.ndarray | None = None) -> RetrievalResult:
    """High-level retrieval accuracy of paired window embeddings audio, motion (N, D): each
    query (an audio window, cycling through the rows ``query_mask`` (N,) allows, default all)
    sees its paired motion window and up to ``candidates - 1`` others drawn at random
    (never those ``exclude`` (N, N) marks). Ties count as misses."""
    a, m = _unit(audio), _unit(motion)
    N = len(a)
    allowed = ~np.eye(N, dtype=bool) if exclude is None else ~(np.asarray(exclude, bool) | np.eye(N, dtype=bool))
    rows = np.arange(N) if query_mask is None else np.flatnonzero(query_mask)
    if len(rows) == 0:
        return RetrievalResult(0, 0, float("nan"))
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(rows) for _ in range(-(-queries // len(rows)))])[:queries]
    hits, chance = 0, 0.0
    for q in order:
        others = np.flatnonzero(allowed[q])
        if len(others) > candidates - 1:
            others = rng.choice(others, size=candidates - 1, replace=False)
        hits += int(not np.any(m[others] @ a[q] >= m[q] @ a[q]))
        chance += 1.0 / (len(others) + 1)
    return RetrievalResult(hits, len(order), chance / len(order))


__all__ = ["RetrievalResult", "LowLevelRange", "low_level_accuracy", "high_level_accuracy",
           "onset_baseline_accuracy", "motion_beat_strength", "overlap_exclusion"]
