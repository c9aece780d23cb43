"""The general-sound stream: per-frame descriptors of sound that is not speech content.

KeyFace (seed 003, "audio encoders") concatenates a speech-content encoder with a
general-audio encoder so that non-speech vocalisations (laughs, sighs, breaths) animate
the face too. No general-audio network with its weights installs from the package
registries (the audio classifiers there download their weights at run time), so this
stream is made of signal descriptors computed from :class:`AudioFeatures`, which every
prepared clip already stores (no re-analysis of the waveform, no new dependency):

- ``sound_level``: loudness outside speech, energy x (1 - vad): laughs, sighs, breaths,
  music; 0 in silence and in speech;
- ``voiced_nonspeech``: pitched sound the voice detector does not call speech (laughter
  is voiced bursts, singing, hums);
- ``breath``: unvoiced loudness, energy where there is no pitch (sighs, breaths, /h/);
- ``burstiness``: the spread of loudness over the last ~0.4 s (laughter comes in 4-6 Hz
  bursts; steady speech and silence spread less);
- ``tilt``: high bands minus low bands of the log-mel (breathy / noisy sounds are bright);
- ``flatness``: how flat the log-mel is across bands (noise and breath are flat,
  vowels peaked).

Which descriptors to keep was measured (benchmarks/bench_sound.py): on real recordings
each is regressed linearly on the speech stream (the vasa audio frame: log-mel, energy,
onset, vad, log-pitch, voicing, with the neighbouring frames); a descriptor that the
speech stream predicts with R^2 near 1 adds nothing. The figures are in the module
constant ``MEASURED_R2``.
"""

from __future__ import annotations

import numpy as np

from avatar.audio.types import AudioFeatures

SOUND_CHANNELS = ("sound_level", "voiced_nonspeech", "breath", "burstiness", "tilt", "flatness")
BURST_SECONDS = 0.4  # laughter repeats at 4-6 Hz: a window holding about two bursts
# R^2 of each descriptor from the speech stream (+-2 frames), pooled over the real clips
# and recordings of ../shared/data (measured by benchmarks/bench_sound.py).
# 8407 frames of 18 recordings: tilt is fully predicted (1.00) and breath mostly (0.88);
# burstiness (0.17), flatness (0.51), sound_level (0.58) and voiced_nonspeech (0.60) carry
# information the speech stream does not, and sound_level / voiced_nonspeech separate
# sound outside speech (0.40 / 0.55) from speech and silence (<= 0.01).
MEASURED_R2: dict[str, float] = {"sound_level": 0.58, "voiced_nonspeech": 0.60, "breath": 0.88,
                                 "burstiness": 0.17, "tilt": 1.00, "flatness": 0.51}


def sound_frames(features: AudioFeatures) -> np.ndarray:
    """(T, len(SOUND_CHANNELS)) general-sound descriptors per video frame."""
    energy, vad = features.energy.astype(np.float32), features.vad.astype(np.float32)
    unvoiced = features.pitch <= 0
    mel = features.mel.astype(np.float32)  # (T, n_mels), per-band normalised over the utterance
    third = max(1, mel.shape[1] // 3)
    tilt = mel[:, -third:].mean(1) - mel[:, :third].mean(1)
    flatness = -mel.std(1)  # flat spectrum: small spread across bands
    window = max(2, int(round(BURST_SECONDS * features.fps)))
    burst = _rolling_std(energy, window)
    cols = [energy * (1.0 - vad), (~unvoiced) * (1.0 - vad), energy * unvoiced, burst, 0.25 * tilt, flatness]
    return np.stack(cols, axis=1).astype(np.float32)


def _rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Std of x over the ``window`` frames ending at each frame (shorter at the start)."""
    c1 = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    c2 = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    end = np.arange(1, len(x) + 1)
    start = np.maximum(0, end - window)
    n = end - start
    mean = (c1[end] - c1[start]) / n
    return np.sqrt(np.maximum(0.0, (c2[end] - c2[start]) / n - mean**2)).astype(np.float32)
