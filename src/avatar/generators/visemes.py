"""Phone -> viseme table: mouth-action targets and coarticulation dominance per viseme.

A viseme is a group of phones that look alike on the face (Fisher 1968; the grouping
here follows the usual ARPAbet classes, e.g. the Preston Blair / JALI mouth sets). Each
viseme gives

- ``targets``: values of the named mouth actions (avatar.motion.types.ACTIONS) the
  articulators aim for during the phone (unlisted mouth actions aim for 0);
- ``alpha``: dominance magnitude per action group (jaw / closure / shape), i.e. how
  strongly the phone insists on its target against its neighbours in the Cohen & Massaro
  (1993) coarticulation model. Bilabials and labiodentals insist strongly on closure
  (they are visibly produced), velars and /h/ hardly at all (they take their shape from
  the neighbouring vowels); rounded vowels insist on lip shape and spread it into
  preceding consonants (anticipatory rounding, Benguerel & Cowan 1974);
- ``theta``: how fast the dominance falls off before (anticipatory) and after
  (carry-over) the phone, in 1/s;
- ``must_hit``: actions whose target must be reached in the middle of the phone, however
  short (lip closure on p/b/m, lip-to-teeth on f/v), as JALI (Edwards et al. 2016)
  enforces for bilabials and labiodentals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from avatar.audio.types import Phone

# The mouth actions the viseme model drives (mouthClose is derived from the lip seal in
# avatar.generators.lips; all other actions belong to other modules).
MOUTH_CHANNELS: tuple[str, ...] = (
    "jawOpen", "mouthFunnel", "mouthPucker", "mouthRollLower",
    "mouthStretchL", "mouthStretchR", "upperLipRaise", "lowerLipDown",
)
# Dominance groups: each mouth channel takes the alpha of its group.
ACTION_GROUP: dict[str, int] = {
    "jawOpen": 0,  # jaw
    "mouthRollLower": 1, "upperLipRaise": 1, "lowerLipDown": 1,  # closure
    "mouthFunnel": 2, "mouthPucker": 2, "mouthStretchL": 2, "mouthStretchR": 2,  # shape
}
# Must-hit constraints are applied in this order, so the later wins where they overlap.
MUST_HIT_ORDER: tuple[str, ...] = ("w", "labiodental", "bilabial")
# Visemes during which the lips are sealed (the whole phone; see lips.lip_seal): p/b/m, and
# f/v and w, where the lower lip rises to the upper teeth / the rounded lips all but meet.
# On real talking faces the tracked lips close on 75-83% of f, v and w phones, as on p/b/m
# (tuning clips tf01/tf07/tf17).
LIP_SEAL_VISEMES: tuple[str, ...] = ("bilabial", "labiodental", "w")
SILENCE = "rest"
PAUSE = "pause"  # a pause between words: lips stay apart, as between breaths
# Pauses inside speech up to this long keep the lips parted. On real talking faces the mouth
# rests at about 40% of its open-vowel opening in pauses of 0.1-1.5 s and is closed in only
# about 30% of their frames (tf01/tf07/tf17, tuning clips); before and after the speech
# and in longer pauses it closes.
PAUSE_PARTED_MAX_S = 1.5


@dataclass(frozen=True)
class Viseme:
    targets: dict[str, float]
    alpha: tuple[float, float, float]  # dominance magnitude (jaw, closure, shape), unitless
    theta: tuple[float, float]  # dominance fall-off rate (anticipatory, carry-over), 1/s
    must_hit: tuple[str, ...] = field(default=())


def _spread(stretch: float) -> dict[str, float]:
    return {"mouthStretchL": stretch, "mouthStretchR": stretch}


# Targets in action units (0 = rest, 1 = full action). Jaw targets are for speech of
# average loudness; avatar.generators.lips scales them with energy.
VISEMES: dict[str, Viseme] = {
    SILENCE: Viseme({}, (0.7, 0.7, 0.7), (10.0, 10.0)),
    PAUSE: Viseme({"jawOpen": 0.12}, (0.3, 0.3, 0.3), (10.0, 10.0)),
    "bilabial": Viseme({"jawOpen": 0.03}, (0.5, 2.0, 0.3), (18.0, 18.0),
                       must_hit=("jawOpen", "upperLipRaise", "lowerLipDown", "mouthFunnel")),
    "labiodental": Viseme({"jawOpen": 0.03, "mouthRollLower": 0.6},
                          (1.2, 1.0, 0.3), (18.0, 18.0),
                          must_hit=("jawOpen", "mouthRollLower", "lowerLipDown")),
    "dental": Viseme({"jawOpen": 0.05, "lowerLipDown": 0.1, "upperLipRaise": 0.05},
                     (1.2, 1.0, 0.3), (18.0, 18.0)),
    "alveolar": Viseme({"jawOpen": 0.08, **_spread(0.1)}, (1.0, 0.5, 0.2), (20.0, 20.0)),
    "sibilant": Viseme({"jawOpen": 0.02, "upperLipRaise": 0.1, "lowerLipDown": 0.1,
                        **_spread(0.25)}, (1.4, 0.8, 0.5), (18.0, 18.0)),
    "postalveolar": Viseme({"jawOpen": 0.08, "mouthFunnel": 0.55, "mouthPucker": 0.2,
                            "upperLipRaise": 0.15}, (0.8, 0.6, 1.2), (18.0, 18.0)),
    "velar": Viseme({"jawOpen": 0.2}, (0.4, 0.3, 0.15), (20.0, 20.0)),
    "glottal": Viseme({"jawOpen": 0.25}, (0.15, 0.15, 0.1), (20.0, 20.0)),
    "rhotic": Viseme({"jawOpen": 0.1, "mouthPucker": 0.3, "mouthFunnel": 0.2},
                     (0.9, 0.4, 0.8), (16.0, 16.0)),
    "w": Viseme({"jawOpen": 0.03, "mouthPucker": 0.7, "mouthFunnel": 0.1},
                (0.8, 0.5, 2.0), (12.0, 18.0), must_hit=("jawOpen",)),
    "y": Viseme({"jawOpen": 0.1, **_spread(0.4)}, (0.6, 0.4, 0.8), (18.0, 18.0)),
    # vowels
    "aa": Viseme({"jawOpen": 0.65, "lowerLipDown": 0.15}, (1.0, 0.8, 0.8), (15.0, 15.0)),
    "ae": Viseme({"jawOpen": 0.55, "upperLipRaise": 0.1, **_spread(0.3)}, (1.0, 0.8, 0.8),
                 (15.0, 15.0)),
    "ah": Viseme({"jawOpen": 0.3}, (1.0, 0.8, 0.6), (15.0, 15.0)),
    "ao": Viseme({"jawOpen": 0.36, "mouthFunnel": 0.3}, (1.0, 0.8, 1.0), (14.0, 15.0)),
    "eh": Viseme({"jawOpen": 0.45, **_spread(0.3)}, (1.0, 0.8, 0.8), (15.0, 15.0)),
    "ih": Viseme({"jawOpen": 0.2, **_spread(0.4)}, (1.0, 0.8, 0.9), (15.0, 15.0)),
    "iy": Viseme({"jawOpen": 0.16, "upperLipRaise": 0.1, **_spread(0.55)}, (1.0, 0.8, 1.0),
                 (15.0, 15.0)),
    "er": Viseme({"jawOpen": 0.08, "mouthPucker": 0.35, "mouthFunnel": 0.1}, (1.0, 0.8, 1.0),
                 (14.0, 15.0)),
    "uh": Viseme({"jawOpen": 0.12, "mouthPucker": 0.4, "mouthFunnel": 0.15}, (1.0, 0.8, 1.2),
                 (12.0, 15.0)),
    "ow": Viseme({"jawOpen": 0.35, "mouthFunnel": 0.55, "mouthPucker": 0.35}, (1.0, 0.8, 1.5),
                 (10.0, 15.0)),
    "uw": Viseme({"jawOpen": 0.05, "mouthPucker": 0.7, "mouthFunnel": 0.1}, (1.0, 0.8, 1.5),
                 (10.0, 15.0)),
}

PHONE_TO_VISEME: dict[str, str] = {
    "SIL": SILENCE,
    "P": "bilabial", "B": "bilabial", "M": "bilabial", "EM": "bilabial",
    "F": "labiodental", "V": "labiodental",
    "TH": "dental", "DH": "dental",
    "T": "alveolar", "D": "alveolar", "N": "alveolar", "L": "alveolar", "DX": "alveolar",
    "EN": "alveolar", "EL": "alveolar", "NX": "alveolar",
    "S": "sibilant", "Z": "sibilant",
    "SH": "postalveolar", "ZH": "postalveolar", "CH": "postalveolar", "JH": "postalveolar",
    "K": "velar", "G": "velar", "NG": "velar", "Q": "velar",
    "HH": "glottal", "R": "rhotic", "W": "w", "WH": "w", "Y": "y",
    "AA": "aa", "AE": "ae", "AH": "ah", "AX": "ah", "AO": "ao", "EH": "eh",
    "IH": "ih", "IX": "ih", "IY": "iy", "ER": "er", "AXR": "er",
    "UH": "uh", "OW": "ow", "UW": "uw", "UX": "uw",
}
# Diphthongs are split into two visemes: (first, second, fraction of time in the first).
DIPHTHONGS: dict[str, tuple[str, str, float]] = {
    "AY": ("aa", "iy", 0.6), "AW": ("aa", "uw", 0.6), "OY": ("ow", "iy", 0.6),
    "EY": ("eh", "iy", 0.6), "OW": ("ao", "uw", 0.55),
}
# Labels some aligners emit for silence, pauses or noise.
SILENCE_LABELS = frozenset({"SIL", "SP", "SPN", "PAU", "NSN", "NOISE", "LAUGH", "BREATH", ""})
UNKNOWN_VISEME = "velar"  # weak, context-taking shape for labels we do not know

VISEME_NAMES: tuple[str, ...] = tuple(VISEMES)
VISEME_INDEX: dict[str, int] = {name: i for i, name in enumerate(VISEME_NAMES)}
SILENCE_INDEX = VISEME_INDEX[SILENCE]
PAUSE_INDEX = VISEME_INDEX[PAUSE]
_STRESS = re.compile(r"[0-9]+$")


def viseme_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-viseme tables over MOUTH_CHANNELS: targets (V, M), alpha (V, M), theta (V, 2)."""
    targets = np.zeros((len(VISEMES), len(MOUTH_CHANNELS)))
    alpha = np.zeros_like(targets)
    theta = np.zeros((len(VISEMES), 2))
    for v, vis in enumerate(VISEMES.values()):
        for m, name in enumerate(MOUTH_CHANNELS):
            targets[v, m] = vis.targets.get(name, 0.0)
            alpha[v, m] = vis.alpha[ACTION_GROUP[name]]
        theta[v] = vis.theta
    return targets, alpha, theta


def normalise_label(label: str) -> str:
    """Upper case, no stress digits, silence aliases -> "SIL"."""
    lab = _STRESS.sub("", str(label).strip().upper())
    return "SIL" if lab in SILENCE_LABELS else lab


@dataclass
class VisemeTrack:
    """Phones as a gap-free sequence of viseme segments covering [0, duration]."""

    viseme: np.ndarray  # (N,) int index into VISEME_NAMES
    start: np.ndarray  # (N,) seconds
    end: np.ndarray  # (N,) seconds

    @property
    def is_speech(self) -> np.ndarray:
        return (self.viseme != SILENCE_INDEX) & (self.viseme != PAUSE_INDEX)

    @property
    def is_pause(self) -> np.ndarray:
        return self.viseme == PAUSE_INDEX


def _segments(phones: list[Phone]) -> tuple[list[int], list[float], list[float]]:
    """Label -> viseme indices, splitting diphthongs (one short loop over phones)."""
    vis, starts, ends = [], [], []
    for ph in sorted(phones, key=lambda p: p.start):
        lab = normalise_label(ph.label)
        if lab in DIPHTHONGS:
            first, second, frac = DIPHTHONGS[lab]
            mid = ph.start + frac * (ph.end - ph.start)
            vis += [VISEME_INDEX[first], VISEME_INDEX[second]]
            starts += [ph.start, mid]
            ends += [mid, ph.end]
        else:
            vis.append(VISEME_INDEX[PHONE_TO_VISEME.get(lab, UNKNOWN_VISEME)])
            starts.append(ph.start)
            ends.append(ph.end)
    return vis, starts, ends


def viseme_track(phones: list[Phone], duration: float) -> VisemeTrack:
    """Visemes of ``phones`` clipped to [0, duration]; gaps and the ends filled with rest."""
    vis, starts, ends = _segments(phones)
    v = np.asarray(vis, np.int64)
    s = np.clip(np.asarray(starts, np.float64), 0.0, duration)
    e = np.clip(np.asarray(ends, np.float64), 0.0, duration)
    if len(s) > 1:  # overlapping phones: cut each at the next one's start
        e[:-1] = np.minimum(e[:-1], s[1:])
    ok = e - s > 1e-6
    v, s, e = v[ok], s[ok], e[ok]
    # rest segments for the gaps before, between and after the phones
    gap_start = np.concatenate([[0.0], e])
    gap_end = np.concatenate([s, [duration]])
    gap = gap_end - gap_start > 1e-6
    v = np.concatenate([v, np.full(int(gap.sum()), SILENCE_INDEX)])
    s = np.concatenate([s, gap_start[gap]])
    e = np.concatenate([e, gap_end[gap]])
    order = np.argsort(s, kind="stable")
    v, s, e = v[order], s[order], e[order]
    rest = v == SILENCE_INDEX
    inside = np.zeros(len(v), bool)
    inside[1:-1] = ~rest[:-2] & ~rest[2:]  # speech on both sides
    v[rest & inside & (e - s <= PAUSE_PARTED_MAX_S)] = PAUSE_INDEX
    return VisemeTrack(viseme=v, start=s, end=e)
