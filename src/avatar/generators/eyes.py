"""Blinks and gaze.

Blinks: a renewal process with a refractory gap, about 22 blinks a minute (Bentivoglio
et al. 1997: 17/min at rest, 26/min in conversation; the real speakers of our development
clips blink a median 24/min), each 150-400 ms with a fast close, a brief
hold shut and a slower open (Evinger et al. 1991), drawn toward pauses (speakers blink at phrase
boundaries; Cummins 2012). Both lids move together.

Gaze: fixations of 0.5-3 s on the main direction (controls.gaze) or a few degrees off it,
joined by 1-2 frame saccades; at pauses the speaker sometimes looks down or aside
"thinking" (gaze aversion, Kendon 1967); the eyes partly follow head turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import find_peaks

from avatar.generators.prosody import Prosody
from avatar.generators.signals import (moving_average, raised_cosine, ragged_windows, smooth_noise,
                                       thin_events)

DEG = np.pi / 180.0
BLINK_RATE_PER_MIN = 22.0  # at arousal 0
BLINK_RATE_PER_AROUSAL = 0.15  # rate multiplier 1 + this * arousal
BLINK_REFRACTORY_S = 1.0  # no blink sooner than this after the last (s)
BLINK_GAMMA_SHAPE = 2.0  # shape of the gamma-distributed wait after the refractory gap
BLINK_DURATION_S = (0.3, 0.25, 0.15, 0.4)  # lognormal median (s), sigma, clip low, clip high
BLINK_HOLD_SHARE = 0.2  # share of a blink the lid stays shut (3+ frames below half open at 25 fps)
BLINK_CLOSE_SHARE = 0.3  # share of the moving part spent closing (closing is fast)
BLINK_AMPLITUDE = (0.92, 1.0)  # peak closure range
BLINK_LR_DIFF = 0.02  # largest left/right difference of a blink's peak
BLINK_SNAP_S = 0.8  # a blink this close to a pause may move to the pause start (s)
BLINK_SNAP_PROB = 0.6
BLINK_SNAP_DELAY_S = (0.05, 0.25)  # where in the pause it lands (s after its start)
BLINK_MIN_GAP_S = 0.6  # after moving, blinks closer than this are dropped (s)
BLINK_PROMINENCE = 0.25  # a learned lid peak this far above its local baseline is a blink
BLINK_BASELINE_S = 1.0  # window of the running median that gives a lid curve's baseline (s)

FIXATION_S = (1.2, 0.5, 0.5, 3.0)  # lognormal median (s), sigma, clip low, clip high
FIXATION_RETURN_PROB = 0.45  # a new fixation goes back to the main direction
SACCADE_STD_DEG = (2.0, 1.2)  # offset std (x, y) of a fixation off the main direction
SACCADE_MAX_DEG = 4.0
SACCADE_S = 0.06  # a saccade is spread over this time (1-2 frames at 25 fps)
THINK_PROB = 0.5  # chance of a thinking glance at a pause
THINK_OFFSET_DEG = ((3.0, 6.0), (2.0, 5.0))  # |x| aside and y down ranges (deg)
THINK_DURATION_S = (0.5, 1.2)
THINK_DELAY_S = 0.1  # the glance starts this long into the pause (s)
GAZE_DRIFT_DEG = 0.15  # fixational drift std (deg)
GAZE_DRIFT_TAU_S = 0.3
HEAD_FOLLOW = 0.15  # gaze moves this fraction of the head's yaw/pitch


@dataclass
class Blinks:
    time: np.ndarray  # (B,) peak-closure times (s), on frame times
    duration: np.ndarray  # (B,) (s)
    amplitude: np.ndarray  # (B,) peak closure of the left lid
    right: np.ndarray  # (B,) peak closure of the right lid (within BLINK_LR_DIFF of the left)


def _lognormal(rng: np.random.Generator, spec, n: int) -> np.ndarray:
    median, sigma, lo, hi = spec
    return np.clip(median * np.exp(sigma * rng.standard_normal(n)), lo, hi)


def blink_times(rng: np.random.Generator, duration: float, rate_per_min: float) -> np.ndarray:
    """(B,) renewal-process blink times: refractory gap + gamma wait, mean 60/rate s."""
    mean = 60.0 / rate_per_min
    wait_mean = max(mean - BLINK_REFRACTORY_S, 0.1)
    n = int(np.ceil(duration / BLINK_REFRACTORY_S)) + 2
    gaps = BLINK_REFRACTORY_S + rng.gamma(BLINK_GAMMA_SHAPE, wait_mean / BLINK_GAMMA_SHAPE, n)
    times = rng.uniform(0.2, mean) + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    return times[times < duration]


def snap_to_pauses(rng: np.random.Generator, times: np.ndarray, pause_starts: np.ndarray):
    """Move some blinks to nearby pause starts; drop any that end up too close."""
    if len(times) == 0 or len(pause_starts) == 0:
        return times
    j = np.clip(np.searchsorted(pause_starts, times), 1, len(pause_starts)) - 1
    j_next = np.minimum(j + 1, len(pause_starts) - 1)
    near = np.where(np.abs(pause_starts[j_next] - times) < np.abs(pause_starts[j] - times),
                    pause_starts[j_next], pause_starts[j])
    move = (np.abs(near - times) < BLINK_SNAP_S) & (rng.random(len(times)) < BLINK_SNAP_PROB)
    moved = np.where(move, near + rng.uniform(*BLINK_SNAP_DELAY_S, len(times)), times)
    moved = np.sort(moved)
    return moved[thin_events(moved, BLINK_MIN_GAP_S)]


def blink_events(rng: np.random.Generator, prosody: Prosody, fps: float,
                 arousal: float) -> Blinks:
    """Blink times (snapped to frames), durations and peak closures."""
    T = len(prosody.activity)
    rate = BLINK_RATE_PER_MIN * max(0.5, 1.0 + BLINK_RATE_PER_AROUSAL * arousal)
    times = blink_times(rng, T / fps, rate)
    times = snap_to_pauses(rng, times, prosody.pauses[:, 0] / fps)
    times = np.round(times * fps) / fps  # full closure falls on a frame
    times = times[times < T / fps]
    n = len(times)
    left = rng.uniform(*BLINK_AMPLITUDE, n)
    right = left * (1.0 - BLINK_LR_DIFF * rng.random(n))
    return Blinks(time=times, duration=_lognormal(rng, BLINK_DURATION_S, n),
                  amplitude=left, right=right)


def render_blinks(blinks: Blinks, num_frames: int, fps: float) -> np.ndarray:
    """(T, 2) left/right eyelid closure per blink: raised-cosine close (fast), a hold shut
    centred on the blink's time, raised-cosine open (slow)."""
    hold = BLINK_HOLD_SHARE * blinks.duration  # (B,)
    close = BLINK_CLOSE_SHARE * (blinks.duration - hold)
    open_ = blinks.duration - hold - close
    first = np.floor((blinks.time - 0.5 * hold - close) * fps).astype(np.int64)
    stop = np.ceil((blinks.time + 0.5 * hold + open_) * fps).astype(np.int64) + 1
    owner, frame = ragged_windows(first, stop, num_frames)
    tau = frame / fps - blinks.time[owner]  # (W,) time from the middle of the hold
    moving = np.maximum(np.abs(tau) - 0.5 * hold[owner], 0.0)  # (W,) time outside the hold
    half = np.where(tau < 0.0, close[owner], open_[owner])
    profile = raised_cosine(moving / half)  # (W,)
    lids = np.zeros((num_frames, 2))
    np.maximum.at(lids[:, 0], frame, blinks.amplitude[owner] * profile)
    np.maximum.at(lids[:, 1], frame, blinks.right[owner] * profile)
    return lids


def reshape_blinks(rng: np.random.Generator, lids: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) learned eyelid closures with every blink redrawn in the rules' shape.

    A model trained on minutes of video learns when to blink (VASA-1 §3.2 keeps blinks in
    its latent), but draws them as 1-2 frame flicks that stop short of closing (tracked:
    1.7 frames, where people take 150-400 ms). Each peak of the mean lid curve standing
    BLINK_PROMINENCE above its running median is kept at the model's time and redrawn as
    one full blink (render_blinks); the model's own lids are kept everywhere else."""
    T = len(lids)
    mean = lids.mean(axis=1)  # (T,)
    width = max(3, int(round(BLINK_BASELINE_S * fps)) | 1)
    base = median_filter(mean, size=width, mode="reflect")  # (T,)
    excess = mean - base  # (T,)
    peaks, _ = find_peaks(np.pad(excess, 1), height=BLINK_PROMINENCE,  # padded: a blink on the first
                          distance=max(1, int(round(BLINK_REFRACTORY_S * fps))))  # frame is a peak too
    peaks = peaks - 1
    n = len(peaks)
    if n == 0:
        return lids
    # every flick is flattened: the peaks are redrawn below, the rest were too close to one
    own = np.where((excess > 0.5 * BLINK_PROMINENCE)[:, None], np.minimum(lids, base[:, None]), lids)
    left = rng.uniform(*BLINK_AMPLITUDE, n)
    blinks = Blinks(time=peaks / fps, duration=_lognormal(rng, BLINK_DURATION_S, n), amplitude=left,
                    right=left * (1.0 - BLINK_LR_DIFF * rng.random(n)))
    return np.maximum(own, render_blinks(blinks, T, fps))


def fixation_offsets(rng: np.random.Generator, num_frames: int, fps: float) -> np.ndarray:
    """(T, 2) piecewise-constant gaze offsets (rad) from the main direction."""
    n = int(np.ceil(num_frames / fps / FIXATION_S[2])) + 2
    ends = np.cumsum(_lognormal(rng, FIXATION_S, n))  # (n,) fixation end times
    offset = rng.standard_normal((n, 2)) * np.asarray(SACCADE_STD_DEG) * DEG
    offset = np.clip(offset, -SACCADE_MAX_DEG * DEG, SACCADE_MAX_DEG * DEG)
    offset[rng.random(n) < FIXATION_RETURN_PROB] = 0.0
    offset[0] = 0.0  # start on the main direction
    which = np.searchsorted(ends, np.arange(num_frames) / fps, side="right")
    return offset[np.minimum(which, n - 1)]


def thinking_glances(rng: np.random.Generator, gaze: np.ndarray, pauses: np.ndarray,
                     fps: float) -> np.ndarray:
    """Override gaze offsets (T, 2) with down/aside glances at some pauses (loop over pauses)."""
    out = gaze.copy()
    for start, stop in pauses:
        if rng.random() >= THINK_PROB:
            continue
        a = int(start + round(THINK_DELAY_S * fps))
        b = min(int(stop), a + int(round(rng.uniform(*THINK_DURATION_S) * fps)))
        side = rng.choice([-1.0, 1.0])
        out[a:b, 0] = side * rng.uniform(*THINK_OFFSET_DEG[0]) * DEG
        out[a:b, 1] = -rng.uniform(*THINK_OFFSET_DEG[1]) * DEG
    return out


def gaze_track(rng: np.random.Generator, prosody: Prosody, main: tuple[float, float],
               head_rotation: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) gaze direction (x right, y up; radians)."""
    T = len(prosody.activity)
    offsets = thinking_glances(rng, fixation_offsets(rng, T, fps), prosody.pauses, fps)
    offsets = moving_average(offsets, max(1, round(SACCADE_S * fps)))  # 1-2 frame saccades
    drift = np.stack([smooth_noise(rng, T, fps, GAZE_DRIFT_TAU_S) for _ in range(2)], axis=1)
    follow = HEAD_FOLLOW * head_rotation[:, :2]  # (T, 2) yaw -> x, pitch -> y
    return np.asarray(main, np.float64)[None, :] + offsets + GAZE_DRIFT_DEG * DEG * drift + follow
