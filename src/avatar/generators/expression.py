"""Emotion and emphasis on the upper face and mouth corners.

Continuous valence/arousal (the circumplex model, Russell 1980) map to facial actions
after the FACS prototypes of the basic emotions (Ekman & Friesen 1978): positive valence
smiles (AU12) with a squint (AU6); sadness raises the inner brows (AU1) and pulls the
corners down (AU15); anger lowers the brows (AU4) with tense lids; surprise / high
arousal raises the brows (AU1+2) and widens the eyes (AU5). Brows also rise on
emphasised syllables (Cavé et al. 1996; Graf et al. 2002), more with arousal. A slow
random drift keeps the expression from looking frozen.
"""

from __future__ import annotations

import numpy as np

from avatar.generators.base import Controls
from avatar.generators.prosody import Prosody, impulse_response, strongest
from avatar.generators.signals import smooth_noise

SMILE_PER_VALENCE = 0.45  # mouthSmile per unit positive valence
FROWN_PER_VALENCE = 0.3  # mouthFrown per unit negative valence
SMILE_ROUNDING_SUPPRESS = 0.7  # rounded lips (pucker/funnel) hide this much of a smile
SQUINT_PER_SMILE = 0.4  # eyeSquint per unit smile (Duchenne smile)
SAD_BROW_INNER = 0.55  # browInnerUp per unit sadness
ANGER_BROW_DOWN = 0.7  # browDown per unit anger
ANGER_SQUINT = 0.3  # eyeSquint per unit anger
SURPRISE_BROW_UP = 0.45  # browInnerUp / browOuterUp per unit surprise
AROUSAL_EYE_WIDE = 0.35  # eyeWide per unit arousal above AROUSAL_WIDE_FROM
AROUSAL_WIDE_FROM = 0.4
EMPHASIS_BROW = 0.3  # brow raise on the strongest emphasis at arousal 0
EMPHASIS_AROUSAL_GAIN = 0.5  # ... times 1 + this * arousal
EMPHASIS_MIN_STRENGTH = 0.6  # only emphases at least this strong (0-1) can raise the brows ...
EMPHASIS_MIN_GAP_S = 2.0  # ... at most once per this interval (s)
EMPHASIS_PROB = 0.45  # chance that an emphasis raises the brows, at arousal 0 ...
EMPHASIS_PROB_PER_AROUSAL = 0.3  # ... plus this per unit arousal
EMPHASIS_EYE_WIDE = 0.3  # eyeWide per unit brow raise when aroused
EMPHASIS_SHAPE_S = (0.1, 0.15, 0.35)  # brow raise attack, hold, release (s)
EMPHASIS_LEAD_S = 0.05  # the raise starts this long before the onset (s)
DRIFT_SHARE = 0.12  # relative slow variation of the emotional expression
DRIFT_TAU_S = 3.0


def emotion_levels(controls: Controls) -> dict[str, float]:
    """Valence/arousal -> intensities in [0, 1] of smile, sadness, anger, surprise, frown."""
    v = float(np.clip(controls.valence, -1.0, 1.0))
    a = float(np.clip(controls.arousal, -1.0, 1.0))
    neg, pos = max(-v, 0.0), max(v, 0.0)
    return {
        "smile": pos,
        "sad": neg * (1.0 - max(a, 0.0)),
        "anger": neg * max(a, 0.0),
        "surprise": max(a - 0.5, 0.0) / 0.5 * (1.0 - neg),
        "wide": max(a - AROUSAL_WIDE_FROM, 0.0) / (1.0 - AROUSAL_WIDE_FROM),
        "frown": neg,
    }


def _symmetric(out: dict[str, np.ndarray], stem: str, value: np.ndarray) -> None:
    out[stem + "L"] = value
    out[stem + "R"] = value


def emphasis_brows(prosody: Prosody, controls: Controls, fps: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(T,) brow raise on some emphasised onsets, larger and more frequent with arousal."""
    a = float(np.clip(controls.arousal, -1.0, 1.0))
    prob = np.clip(EMPHASIS_PROB + EMPHASIS_PROB_PER_AROUSAL * a, 0.0, 1.0)
    frames, strength = strongest(prosody, EMPHASIS_MIN_STRENGTH, EMPHASIS_MIN_GAP_S, fps)
    chosen = rng.random(len(frames)) < prob
    attack, hold, release = (max(1, round(s * fps)) for s in EMPHASIS_SHAPE_S)
    kernel = np.concatenate([np.linspace(0.0, 1.0, attack, endpoint=False),
                             np.ones(hold),
                             0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, release)))])
    amp = EMPHASIS_BROW * (1.0 + EMPHASIS_AROUSAL_GAIN * a) * strength[chosen]
    raise_ = impulse_response(len(prosody.activity), frames[chosen], amp, kernel,
                              lead=round(EMPHASIS_LEAD_S * fps))
    return np.minimum(raise_, 1.0)


def expression(prosody: Prosody, controls: Controls, mouth: dict[str, np.ndarray],
               fps: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Emotion + emphasis action curves {name: (T,)} (smile, frown, brows, squint, wide)."""
    T = len(prosody.activity)
    lv = emotion_levels(controls)
    drift = 1.0 + DRIFT_SHARE * smooth_noise(rng, T, fps, DRIFT_TAU_S)  # (T,)
    rounding = np.maximum(mouth["mouthPucker"], mouth["mouthFunnel"])  # (T,)
    smile = SMILE_PER_VALENCE * lv["smile"] * drift * (1.0 - SMILE_ROUNDING_SUPPRESS * rounding)
    emph = emphasis_brows(prosody, controls, fps, rng)  # (T,)
    out: dict[str, np.ndarray] = {}
    _symmetric(out, "mouthSmile", smile)
    _symmetric(out, "mouthFrown", FROWN_PER_VALENCE * lv["frown"] * drift)
    out["browInnerUp"] = (SAD_BROW_INNER * lv["sad"] + SURPRISE_BROW_UP * lv["surprise"]) * drift \
        + emph * (1.0 - lv["anger"])
    _symmetric(out, "browOuterUp", SURPRISE_BROW_UP * lv["surprise"] * drift
               + emph * (1.0 - lv["anger"]))
    _symmetric(out, "browDown", ANGER_BROW_DOWN * lv["anger"] * drift + emph * lv["anger"])
    _symmetric(out, "eyeSquint", SQUINT_PER_SMILE * smile + ANGER_SQUINT * lv["anger"])
    _symmetric(out, "eyeWide", (AROUSAL_EYE_WIDE * drift + EMPHASIS_EYE_WIDE * emph) * lv["wide"])
    return {name: np.clip(v, 0.0, 1.0) for name, v in out.items()}
