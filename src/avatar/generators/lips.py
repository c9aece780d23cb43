"""Mouth motion: visemes with coarticulation, gated so non-speech leaves the mouth at rest.

Coarticulation follows the dominance model of Cohen & Massaro (1993), "Modeling
coarticulation in synthetic visual speech": every phone s has, for every mouth action,
a target T_s and a dominance function D_s(t) = alpha_s * exp(-theta_s * tau); the curve
is the dominance-weighted average F(t) = sum_s D_s(t) T_s / sum_s D_s(t). Our variant
measures tau from the phone's nearest EDGE (0 inside the phone) rather than its centre,
so long phones (pauses especially) hold their target over their whole span; theta
differs before (anticipatory) and after (carry-over) the phone. Dominance is evaluated
only over a local window around each phone (ragged, vectorised), so cost is linear in
the number of phones. Visibly produced constrictions (lips closed on p/b/m, lower lip to
teeth on f/v) are then enforced in the middle of each such phone with a smooth
raised-cosine blend, as JALI (Edwards et al. 2016) does for bilabials/labiodentals.

Lip closure is modelled as a "lip seal" separate from the jaw (lips move faster than the
jaw): 1 over each p/b/m, falling off within LIP_SEAL_RAMP_S, and emitted as
mouthClose = seal * jawOpen (the face basis gives mouthClose ARKit semantics: it "undoes
jawOpen's lip gap", avatar.face.actions). On p/b/m the jaw is also brought nearly shut,
so the lips meet however the renderer combines the two.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatar.audio.types import AudioFeatures
from avatar.generators.signals import (dilate, moving_average, raised_cosine, ragged_windows,
                                       smoothstep)
from avatar.generators.visemes import (LIP_SEAL_VISEMES, MOUTH_CHANNELS, MUST_HIT_ORDER,
                                       VISEME_INDEX, VISEMES, VisemeTrack, viseme_arrays)

DOMINANCE_WINDOW_S = 0.35  # dominance is evaluated this far outside each phone (s)
ARTICULATOR_SMOOTH_S = 0.03  # Gaussian sigma: inertia of jaw and lips on the blended curves (s)
MUST_HIT_CORE = 0.25  # fraction of the phone's duration on each side of its centre held at target
MUST_HIT_SPEED = 7.0  # fastest the must-hit pull moves a channel (1/s; 0.28 a frame at 25 fps)
MUST_HIT_RAMP_S = (0.06, 0.25)  # shortest and longest ramp into a must-hit target (s)
MUST_HIT_LOOK_S = 0.12  # free motion this far around a must-hit phone sets its ramp length (s)
LIP_SEAL_RAMP_S = 0.06  # lips part / meet within this time outside a p/b/m (s)
JAW_GAIN_BASE = 0.45  # jaw target multiplier at energy 0 ...
JAW_GAIN_PER_ENERGY = 1.0  # ... plus this much per unit of phone energy (loud = more open)
JAW_GAIN_RANGE = (0.35, 1.45)  # (0.6 + 0.7 E within 0.5-1.3: opening r 0.01 lower on tuning clips)
JAW_GAIN_PER_AROUSAL = 0.15  # hyper-articulation when aroused, hypo when calm
VAD_DILATE_S = 0.3  # a speech frame keeps the mouth active this long around it (s)
VAD_GATE = (0.2, 0.5)  # vad probability where the mouth gate ramps from 0 to 1
GATE_SMOOTH_S = 0.12  # smoothing of the gate so it never pops (s)
# Audio-only fallback (no phones): jaw from loudness, lip shape from spectral centroid.
# Set so its opening matches the phone-driven mouth's on real recordings: (0.55, 0.15-0.9)
# held the jaw open about twice as wide, closing in 2-9% of frames instead of ~18%
# (chosen on tf05/a07, checked on tf17/tf03/a05).
FALLBACK_JAW_MAX = 0.45
FALLBACK_ENERGY_RANGE = (0.3, 1.0)
FALLBACK_SHAPE_GAIN = 0.25

_MOUTH_COL = {name: m for m, name in enumerate(MOUTH_CHANNELS)}


def phone_energy(track: VisemeTrack, energy: np.ndarray, fps: float) -> np.ndarray:
    """Mean energy over each segment's frames; the nearest frame for segments < 1 frame."""
    T = len(energy)
    csum = np.concatenate([[0.0], np.cumsum(energy, dtype=np.float64)])  # (T+1,)
    a = np.clip(np.ceil(track.start * fps).astype(np.int64), 0, T)
    b = np.clip(np.ceil(track.end * fps).astype(np.int64), 0, T)
    count = b - a
    nearest = np.clip(np.round(0.5 * (track.start + track.end) * fps).astype(np.int64), 0, T - 1)
    mean = (csum[b] - csum[a]) / np.maximum(count, 1)
    return np.where(count > 0, mean, energy[nearest])  # (N,)


def segment_tables(track: VisemeTrack, energy: np.ndarray, fps: float, arousal: float):
    """Per-segment targets (N, M), dominance alpha (N, M) and theta (N, 2)."""
    targets_v, alpha_v, theta_v = viseme_arrays()
    targets = targets_v[track.viseme].copy()  # (N, M)
    gain = JAW_GAIN_BASE + JAW_GAIN_PER_ENERGY * phone_energy(track, energy, fps)
    gain = np.clip(gain * (1.0 + JAW_GAIN_PER_AROUSAL * arousal), *JAW_GAIN_RANGE)
    targets[:, _MOUTH_COL["jawOpen"]] *= gain
    return targets, alpha_v[track.viseme], theta_v[track.viseme]


def dominance_blend(track: VisemeTrack, targets: np.ndarray, alpha: np.ndarray,
                    theta: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Cohen-Massaro weighted average of segment targets at every frame -> (T, M)."""
    first = np.floor((track.start - DOMINANCE_WINDOW_S) * fps).astype(np.int64)
    stop = np.ceil((track.end + DOMINANCE_WINDOW_S) * fps).astype(np.int64) + 1
    owner, frame = ragged_windows(first, stop, num_frames)  # (W,), (W,)
    t = frame / fps
    before = np.maximum(track.start[owner] - t, 0.0)  # anticipatory distance (s)
    after = np.maximum(t - track.end[owner], 0.0)  # carry-over distance (s)
    decay = np.exp(-(theta[owner, 0] * before + theta[owner, 1] * after))  # (W,)
    dom = alpha[owner] * decay[:, None]  # (W, M)
    out = np.zeros((num_frames, len(MOUTH_CHANNELS)))
    den = np.bincount(frame, weights=decay, minlength=num_frames)  # only to find gaps
    for m in range(len(MOUTH_CHANNELS)):
        num = np.bincount(frame, weights=dom[:, m] * targets[owner, m], minlength=num_frames)
        wsum = np.bincount(frame, weights=dom[:, m], minlength=num_frames)
        out[:, m] = num / np.maximum(wsum, 1e-12)
    out[den <= 0] = 0.0  # frames no segment reaches (cannot happen for a gap-free track)
    return out


def _windows(centre: np.ndarray, reach: np.ndarray, fps: float, num_frames: int):
    """Ragged frame windows centre +- reach (seconds) -> (owner, frame) flat arrays."""
    return ragged_windows(np.floor((centre - reach) * fps).astype(np.int64),
                          np.ceil((centre + reach) * fps).astype(np.int64) + 1, num_frames)


def _must_hit_weight(curve: np.ndarray, centre: np.ndarray, core: np.ndarray,
                     target: float, fps: float) -> np.ndarray:
    """(T,) blend weight pulling ``curve`` to ``target``: 1 in each phone's core, then a
    raised-cosine ramp long enough that the pull moves at most MUST_HIT_SPEED per second."""
    T = len(curve)
    # how far free motion strays from the target near each phone -> ramp length
    owner, frame = _windows(centre, core + MUST_HIT_LOOK_S, fps, T)
    residual = np.zeros(len(centre))  # (K,)
    np.maximum.at(residual, owner, np.abs(target - curve[frame]))
    ramp = np.clip(residual * np.pi / (2.0 * MUST_HIT_SPEED), *MUST_HIT_RAMP_S)  # (K,)
    owner, frame = _windows(centre, core + ramp, fps, T)
    dist = np.maximum(np.abs(frame / fps - centre[owner]) - core[owner], 0.0)
    weight = np.zeros(T)
    np.maximum.at(weight, frame, raised_cosine(dist / ramp[owner]))
    return weight


def enforce_must_hit(curves: np.ndarray, track: VisemeTrack, fps: float) -> np.ndarray:
    """Blend the must-hit channels of p/b/m and f/v to their targets mid-phone -> (T, M)."""
    out = curves.copy()
    for name in MUST_HIT_ORDER:
        vis = VISEMES[name]
        sel = np.flatnonzero(track.viseme == VISEME_INDEX[name])
        if len(sel) == 0:
            continue
        centre = 0.5 * (track.start[sel] + track.end[sel])  # (K,)
        core = np.maximum(MUST_HIT_CORE * (track.end[sel] - track.start[sel]), 0.5 / fps)
        for action in vis.must_hit:
            m, target = _MOUTH_COL[action], vis.targets.get(action, 0.0)
            weight = _must_hit_weight(out[:, m], centre, core, target, fps)  # (T,)
            out[:, m] = (1.0 - weight) * out[:, m] + weight * target
    return out


def mouth_from_phones(track: VisemeTrack, features: AudioFeatures, arousal: float) -> np.ndarray:
    """Coarticulated mouth actions from the phone alignment -> (T, M)."""
    T, fps = features.num_frames, features.fps
    energy = np.nan_to_num(np.asarray(features.energy, np.float64))
    targets, alpha, theta = segment_tables(track, energy, fps, arousal)
    curves = dominance_blend(track, targets, alpha, theta, T, fps)  # (T, M)
    curves = gaussian_filter1d(curves, ARTICULATOR_SMOOTH_S * fps, axis=0, mode="nearest")
    return enforce_must_hit(curves, track, fps)


def _spectral_tilt(mel: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Standardised spectral centroid of the log-mel frames (0 where unknown) -> (T,)."""
    mel = np.nan_to_num(np.asarray(mel, np.float64))
    if mel.ndim != 2 or mel.shape[1] < 2 or not active.any():
        return np.zeros(len(active))
    w = np.exp(mel - mel.max(axis=1, keepdims=True))  # (T, n_mels)
    centroid = (w * np.arange(mel.shape[1])).sum(axis=1) / w.sum(axis=1)
    mu, sd = centroid[active].mean(), centroid[active].std() + 1e-6
    return np.clip((centroid - mu) / sd, -2.0, 2.0) * active


def mouth_from_audio(features: AudioFeatures) -> np.ndarray:
    """Fallback without phones: jaw follows loudness, lips spread/round with the spectrum."""
    T, fps = features.num_frames, features.fps
    energy = moving_average(np.nan_to_num(features.energy), max(1, round(0.08 * fps)))
    out = np.zeros((T, len(MOUTH_CHANNELS)))
    out[:, _MOUTH_COL["jawOpen"]] = FALLBACK_JAW_MAX * smoothstep(energy, *FALLBACK_ENERGY_RANGE)
    active = np.asarray(features.vad) > VAD_GATE[1]
    tilt = moving_average(_spectral_tilt(features.mel, active), max(1, round(0.1 * fps)))
    spread = FALLBACK_SHAPE_GAIN * np.clip(tilt, 0.0, None)
    out[:, _MOUTH_COL["mouthStretchL"]] = spread
    out[:, _MOUTH_COL["mouthStretchR"]] = spread
    out[:, _MOUTH_COL["mouthFunnel"]] = FALLBACK_SHAPE_GAIN * np.clip(-tilt, 0.0, None)
    return out


def speech_gate(vad: np.ndarray, fps: float, pauses: np.ndarray | None = None) -> np.ndarray:
    """1 where the audio is (near) speech or in a pause between words (``pauses``, (T,)
    bool), 0 in silence/music/noise; smooth -> (T,)."""
    vad = np.nan_to_num(np.asarray(vad, np.float64))
    held = smoothstep(dilate(vad, max(1, round(VAD_DILATE_S * fps))), *VAD_GATE)
    if pauses is not None:
        held = np.maximum(held, pauses)
    return moving_average(held, max(1, round(GATE_SMOOTH_S * fps)))


def pause_frames(track: VisemeTrack, fps: float, num_frames: int) -> np.ndarray:
    """(T,) True in the frames of the pauses between words."""
    sel = track.is_pause
    _, frame = ragged_windows(np.floor(track.start[sel] * fps), np.ceil(track.end[sel] * fps), num_frames)
    out = np.zeros(num_frames, bool)
    out[frame] = True
    return out


def lip_seal(track: VisemeTrack, fps: float, num_frames: int) -> np.ndarray:
    """(T,) 1 while the lips are sealed (over each p/b/m), raised-cosine ramps outside."""
    sel = np.flatnonzero(np.isin(track.viseme, [VISEME_INDEX[v] for v in LIP_SEAL_VISEMES]))
    seal = np.zeros(num_frames)
    if len(sel) == 0:
        return seal
    centre = 0.5 * (track.start[sel] + track.end[sel])  # (K,)
    half = np.maximum(0.5 * (track.end[sel] - track.start[sel]), 0.5 / fps)
    owner, frame = _windows(centre, half + LIP_SEAL_RAMP_S, fps, num_frames)
    dist = np.maximum(np.abs(frame / fps - centre[owner]) - half[owner], 0.0)
    np.maximum.at(seal, frame, raised_cosine(dist / LIP_SEAL_RAMP_S))
    return seal


def to_actions(channels: np.ndarray, seal: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth channels (T, M) and lip seal (T,) -> named action curves {name: (T,)}.

    mouthClose "undoes jawOpen's lip gap" (avatar.face.actions), so lips that meet with
    the jaw at j need mouthClose = j: mouthClose = seal * jawOpen, never above jawOpen.
    """
    out = {name: channels[:, m] for m, name in enumerate(MOUTH_CHANNELS)}
    out["mouthClose"] = np.clip(seal, 0.0, 1.0) * out["jawOpen"]
    return out


def mouth_motion(track: VisemeTrack | None, features: AudioFeatures,
                 arousal: float) -> dict[str, np.ndarray]:
    """Mouth action curves {name: (T,)}: from phones if known, else audio; gated by VAD."""
    T = features.num_frames
    pauses = None
    if track is not None:
        channels = mouth_from_phones(track, features, arousal)  # (T, M)
        seal = lip_seal(track, features.fps, T)  # (T,)
        pauses = pause_frames(track, features.fps, T)
    else:
        channels = mouth_from_audio(features)  # (T, M)
        seal = np.zeros(T)
    gate = speech_gate(features.vad, features.fps, pauses)[:, None]  # (T, 1)
    return to_actions(channels * gate, seal)
