"""Prosodic cues shared by head, brow and eye motion: speech activity, pitch, emphasis.

Head and brow motion in conversation follow prosody: F0 correlates with head motion
(Yehia, Kuratate & Vatikiotis-Bateson 2002, "Linking facial animation, head motion and
speech acoustics"), pitch accents attract nods and brow raises (Graf et al. 2002,
"Visual prosody: facial movements accompanying speech"; Cavé et al. 1996 on brows and
F0), and speakers blink and look away at pauses (Cummins 2012; Kendon 1967).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.audio.types import AudioFeatures
from avatar.generators.lips import speech_gate
from avatar.generators.signals import (greedy_min_gap, local_peaks, moving_average, runs,
                                       smoothstep)
from avatar.generators.visemes import VisemeTrack

ACTIVITY_SMOOTH_S = 0.5  # speech activity envelope smoothing (s)
PITCH_MIN_VOICED = 10  # fewer voiced frames than this: no pitch cue
PITCH_MIN_SPREAD_OCT = 0.08  # floor on the pitch spread (octaves) so monotone voices stay calm
PITCH_Z_CLIP = 2.5
PITCH_SMOOTH_S = 0.15
EMPHASIS_MIN_SCORE = 0.12  # weakest onset peak that can be an emphasis (score units)
EMPHASIS_MIN_GAP_S = 0.45  # at most one emphasis per this interval
PAUSE_MIN_S = 0.35  # a non-speech run at least this long, after speech, is a pause


@dataclass
class Prosody:
    speaking: np.ndarray  # (T,) bool: speech at this frame (phones, else VAD)
    activity: np.ndarray  # (T,) [0, 1] smooth speaking envelope weighted by loudness
    pitch_z: np.ndarray  # (T,) standardised log-F0, 0 where unvoiced / not speaking
    emphasis: np.ndarray  # (E,) frame indices of emphasised onsets (pitch accents)
    emphasis_strength: np.ndarray  # (E,) in (0, 1]
    pauses: np.ndarray  # (P, 2) start, stop frames of pauses that follow speech


def speaking_mask(track: VisemeTrack | None, features: AudioFeatures) -> np.ndarray:
    """(T,) True where someone speaks: phones (not SIL) where the VAD allows mouth motion
    (the same gate as the lips), or the VAD alone without phones."""
    T, fps = features.num_frames, features.fps
    if track is None:
        return np.nan_to_num(np.asarray(features.vad, np.float64)) > 0.5
    vad = speech_gate(features.vad, fps) > 0.5
    t = np.arange(T) / fps
    seg = np.clip(np.searchsorted(track.start, t, side="right") - 1, 0, len(track.start) - 1)
    return track.is_speech[seg] & vad


def pitch_z(features: AudioFeatures, speaking: np.ndarray) -> np.ndarray:
    """(T,) log-F0 relative to the speaker's median, in robust standard deviations."""
    f0 = np.nan_to_num(np.asarray(features.pitch, np.float64))
    voiced = (f0 > 0) & speaking
    if voiced.sum() < PITCH_MIN_VOICED:
        return np.zeros(len(f0))
    lf = np.log2(f0[voiced])
    med = np.median(lf)
    spread = max(1.4826 * np.median(np.abs(lf - med)), PITCH_MIN_SPREAD_OCT)
    idx = np.flatnonzero(voiced)
    z = np.interp(np.arange(len(f0)), idx, (lf - med) / spread)  # bridge unvoiced gaps
    z = np.clip(z, -PITCH_Z_CLIP, PITCH_Z_CLIP) * speaking
    return moving_average(z, max(1, round(PITCH_SMOOTH_S * features.fps)))


def emphasis_events(features: AudioFeatures, speaking: np.ndarray, pz: np.ndarray):
    """Onset peaks that are loud and high-pitched: (frames (E,), strength (E,) in (0, 1])."""
    onset = np.nan_to_num(np.asarray(features.onset, np.float64))
    energy = np.nan_to_num(np.asarray(features.energy, np.float64))
    score = onset * (0.5 + energy) * (1.0 + 0.4 * np.clip(pz, 0.0, 2.0)) * speaking
    peaks = local_peaks(score, EMPHASIS_MIN_SCORE)
    peaks = greedy_min_gap(peaks, max(1, round(EMPHASIS_MIN_GAP_S * features.fps)))
    if len(peaks) == 0:
        return peaks, np.zeros(0)
    ref = max(np.quantile(score[peaks], 0.9), 1e-6)
    return peaks, np.clip(score[peaks] / ref, 0.2, 1.0)


def find_pauses(speaking: np.ndarray, fps: float) -> np.ndarray:
    """(P, 2) [start, stop) frames of non-speech runs >= PAUSE_MIN_S that follow speech."""
    starts, stops = runs(~speaking)
    long_enough = stops - starts >= PAUSE_MIN_S * fps
    after_speech = starts > 0
    keep = long_enough & after_speech
    return np.stack([starts[keep], stops[keep]], axis=1)


def analyse(track: VisemeTrack | None, features: AudioFeatures) -> Prosody:
    """All prosodic cues for one utterance."""
    fps = features.fps
    speaking = speaking_mask(track, features)
    energy = np.nan_to_num(np.asarray(features.energy, np.float64))
    loud = speaking * (0.6 + 0.4 * smoothstep(energy, 0.1, 0.9))
    activity = np.clip(moving_average(loud, max(1, round(ACTIVITY_SMOOTH_S * fps))), 0.0, 1.0)
    pz = pitch_z(features, speaking)
    frames, strength = emphasis_events(features, speaking, pz)
    return Prosody(speaking=speaking, activity=activity, pitch_z=pz, emphasis=frames,
                   emphasis_strength=strength, pauses=find_pauses(speaking, fps))


def strongest(prosody: Prosody, min_strength: float, min_gap_s: float, fps: float):
    """Emphasis events of at least ``min_strength``, ``min_gap_s`` apart: (frames, strength)."""
    strong = prosody.emphasis_strength >= min_strength
    frames, strength = prosody.emphasis[strong], prosody.emphasis_strength[strong]
    kept = greedy_min_gap(frames, max(1, round(min_gap_s * fps)))
    return kept, strength[np.searchsorted(frames, kept)]


def impulse_response(num_frames: int, frames: np.ndarray, amplitude: np.ndarray,
                     kernel: np.ndarray, lead: int = 0) -> np.ndarray:
    """(T,) sum of ``kernel`` copies scaled by ``amplitude``, starting ``lead`` frames
    before each event frame."""
    pulses = np.zeros(num_frames + lead)
    np.add.at(pulses, np.asarray(frames, np.int64), amplitude)
    out = np.convolve(pulses, kernel)[lead:lead + num_frames]
    return out
