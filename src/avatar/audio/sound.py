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
- ``burstiness``: the spread of loudness over the last ~0.4 s (laughter comes in 4-6 Hz
  bursts; steady sound and silence spread less);
- ``flatness``: how flat the log-mel is across bands (noise and breath are flat, vowels
  peaked).

Which descriptors to keep was measured on the ten recordings of ../shared/data/audio
(4784 frames at 25 fps: read, conversational (a04, BEAT), news, German, Chinese speech and
one sung clip with accompaniment, a16; none is labelled as holding laughter or audible
breaths, so sung + accompanied frames stand in for non-speech sound). Per descriptor:
R^2 of a ridge regression on the speech stream (the vasa audio frame: log-mel, energy,
onset, vad, log-pitch, voicing, with +-2 neighbouring frames), and the AUC with which the
descriptor alone separates the a16 frames from the frames of the five English speech
clips (``MEASURED``):

    descriptor                   R^2 from speech   AUC sung/music vs speech
    sound_level                  0.59              0.69
    voiced_nonspeech             0.45              0.74
    burstiness                   0.24              0.48  (kept for laughter rhythm, not music)
    flatness                     0.52              0.56
    breath (energy, no pitch)    0.92              0.61  dropped: the speech stream predicts it
    tilt (high - low mel bands)  1.00              0.54  dropped: a linear function of the log-mel

A linear probe of sung vs speech frames reaches AUC 0.987 from the speech stream alone and
0.991 with the four kept descriptors added: on this small set the gain is small, and there
is no real laughter to measure on; the kept descriptors are the ones that are not a
(near-)linear function of the speech stream, so the model can only gain from them.
benchmarks/bench_sound.py repeats the R^2 measurement on the recordings of ../shared/data
(held-out blocks, 18 recordings: sound_level 0.58, voiced_nonspeech 0.60, burstiness 0.17,
flatness 0.51).
"""

from __future__ import annotations

import numpy as np

from avatar.audio.types import AudioFeatures

SOUND_CHANNELS = ("sound_level", "voiced_nonspeech", "burstiness", "flatness")
BURST_SECONDS = 0.4  # laughter repeats at 4-6 Hz: a window holding about two bursts
# (R^2 from the speech stream, AUC of sung/accompanied vs speech frames), see above
MEASURED: dict[str, tuple[float, float]] = {"sound_level": (0.589, 0.692), "voiced_nonspeech": (0.445, 0.737),
                                            "burstiness": (0.241, 0.481), "flatness": (0.515, 0.559)}


def sound_frames(features: AudioFeatures) -> np.ndarray:
    """(T, len(SOUND_CHANNELS)) general-sound descriptors per video frame."""
    energy, vad = features.energy.astype(np.float32), features.vad.astype(np.float32)
    unvoiced = features.pitch <= 0
    mel = features.mel.astype(np.float32)  # (T, n_mels), per-band normalised over the utterance
    flatness = -mel.std(1)  # flat spectrum: small spread across bands
    window = max(2, int(round(BURST_SECONDS * features.fps)))
    burst = _rolling_std(energy, window)
    cols = [energy * (1.0 - vad), (~unvoiced) * (1.0 - vad), burst, flatness]
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
