"""The facial-action basis: each named action is a deformation field on the face mesh.

``build_basis(neutral)`` returns displacements (A, 478, 3) in the canonical head frame
(avatar.face.geometry: x right, y down, z away; unit = face width) for the ACTIONS of
avatar.motion.types, built procedurally on the given neutral face so the same definition
fits every identity. A face with coefficients c is ``neutral + einsum('a,avk->vk', c, B)``.
The actions follow ARKit blendshape semantics where ARKit has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from avatar.face import topology as topo
from avatar.motion.types import ACTIONS

# Amplitudes at coefficient 1, in face widths (a face is ~14 cm wide).
JAW_MAX_ANGLE = 0.40  # rad; lower lip drops ~0.28 face widths (~4 cm) at jawOpen = 1
JAW_PIVOT_DROP = 0.05  # hinge a little below the cheek line, near the ears
CORNER_FOLLOW = 0.35  # share of the jaw's drop the lips keep at the mouth corners
CLOSE_LOWER_SHARE = 0.7  # mouthClose: lower lip travels 70% of the gap, upper lip 30%
SMILE_SHIFT = (0.045, -0.04)  # corner (outward, up)
STRETCH_SHIFT = (0.05, 0.01)
FROWN_SHIFT = (-0.005, 0.04)
CORNER_RADIUS = 0.09  # how far a corner pull spreads over lips and cheek
LIP_RADIUS = 0.035  # how far lip motions spread into the skin around the lips
BROW_SHIFT = 0.06
BROW_RADIUS = 0.08
LID_CLOSE = 0.92  # fraction of the eye opening the upper lid covers in a blink
LID_SKIN_RADIUS = 0.05


def _gauss(d: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-((d / radius) ** 2))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class FaceGeometry:
    """Derived measurements of a neutral face, shared by the action definitions."""

    V: np.ndarray  # (478, 3) neutral face, canonical frame

    def near(self, index, radius: float) -> np.ndarray:
        """(478,) weight falling off with distance (in the image plane) to a landmark group."""
        P = self.V[topo.as_index(index), :2]
        d = np.linalg.norm(self.V[:, None, :2] - P[None], axis=-1).min(1)
        return _gauss(d, radius)

    @cached_property
    def mouth_center(self) -> np.ndarray:
        return self.V[topo.as_index(topo.LIPS_INNER_RING)].mean(0)

    @cached_property
    def mouth_width(self) -> float:
        return float(np.linalg.norm(self.V[topo.MOUTH_CORNER_L] - self.V[topo.MOUTH_CORNER_R]))

    @cached_property
    def lower_face(self) -> np.ndarray:
        """(478,) 1 below the lip line (lower lip, chin), 0 above, smooth in the skin."""
        inner = self.V[topo.as_index(topo.LIPS_INNER_UPPER)] + self.V[topo.as_index(topo.LIPS_INNER_LOWER)]
        line = inner[:, :2] / 2  # (11, 2) lip line from the right corner to the left
        x = self.V[:, 0]
        y_line = np.interp(x, line[:, 0], line[:, 1])
        w = _smoothstep((self.V[:, 1] - y_line + 0.01) / 0.05)
        w[topo.as_index(topo.LIPS_INNER_LOWER + topo.LIPS_OUTER_LOWER)] = 1.0
        w[topo.as_index(topo.LIPS_INNER_UPPER + topo.LIPS_OUTER_UPPER)] = 0.0
        corners = topo.as_index([topo.MOUTH_CORNER_R, topo.MOUTH_CORNER_L,
                                 topo.INNER_CORNER_R, topo.INNER_CORNER_L])
        w[corners] = 0.5
        return w

    @cached_property
    def lips(self) -> np.ndarray:
        return self.near(topo.LIPS_ALL, LIP_RADIUS)

    def corner(self, side: str) -> int:
        return topo.MOUTH_CORNER_L if side == "L" else topo.MOUTH_CORNER_R

    def outward(self, side: str) -> float:
        """+1 if the subject's ``side`` is toward image +x."""
        return float(np.sign(self.V[self.corner(side), 0] - self.mouth_center[0]))


# -- mouth ---------------------------------------------------------------------------------
def jaw_open(g: FaceGeometry) -> np.ndarray:
    """Rotate the lower face about the jaw hinge (x axis through the ears).

    The lips are joined at the corners, so the lower lip drops most at the middle and
    less toward the corners: the opening is a lens, not a slot of even height."""
    pivot = 0.5 * (g.V[topo.CHEEK_R] + g.V[topo.CHEEK_L]) + np.array([0, JAW_PIVOT_DROP, 0])
    c, s = np.cos(JAW_MAX_ANGLE), np.sin(JAW_MAX_ANGLE)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])  # chin goes down and back
    moved = (g.V - pivot) @ rot.T + pivot
    u = np.clip(np.abs(g.V[:, 0] - g.mouth_center[0]) / (0.5 * g.mouth_width), 0.0, 1.0)
    lens = CORNER_FOLLOW + (1.0 - CORNER_FOLLOW) * np.sqrt(1.0 - u ** 2)  # (478,) 1 mid, 0.35 corners
    taper = 1.0 - g.lips * (1.0 - lens)
    return (moved - g.V) * (g.lower_face * taper)[:, None]


def mouth_close(g: FaceGeometry) -> np.ndarray:
    """Lips meet while the jaw stays: undoes jawOpen's lip gap (use with jawOpen)."""
    jaw = jaw_open(g)
    lower = topo.as_index(topo.LIPS_INNER_LOWER)
    upper_share = 1.0 - CLOSE_LOWER_SHARE
    lip_w = g.lips
    below = g.lower_face
    # Lower lip back up by CLOSE_LOWER_SHARE of the jaw's motion; upper lip down the rest.
    d = -CLOSE_LOWER_SHARE * jaw * (lip_w * below)[:, None]
    gap_motion = jaw[lower].mean(0)  # how the lower lip moved at jawOpen = 1
    d += upper_share * gap_motion[None, :] * (lip_w * (1 - below))[:, None]
    return d


def _toward_mouth_center(g: FaceGeometry, squeeze: float, forward: float) -> np.ndarray:
    """Lips drawn toward the mouth's centre line and pushed forward (funnel, pucker)."""
    d = np.zeros_like(g.V)
    w = g.near(topo.LIPS_ALL, LIP_RADIUS * 1.5)
    d[:, 0] = -squeeze * (g.V[:, 0] - g.mouth_center[0]) * w
    d[:, 2] = -forward * w
    return d


def mouth_funnel(g: FaceGeometry) -> np.ndarray:
    d = _toward_mouth_center(g, squeeze=0.25, forward=0.05)
    d[topo.as_index(topo.LIPS_INNER_UPPER), 1] -= 0.015  # a rounded opening
    d[topo.as_index(topo.LIPS_INNER_LOWER), 1] += 0.02
    return d


def mouth_pucker(g: FaceGeometry) -> np.ndarray:
    return _toward_mouth_center(g, squeeze=0.4, forward=0.06)


def mouth_roll_lower(g: FaceGeometry) -> np.ndarray:
    """Lower lip rolls in and up against the upper teeth (f, v); the upper lip lifts a bit."""
    d = np.zeros_like(g.V)
    lower = g.near(topo.LIPS_OUTER_LOWER + topo.LIPS_INNER_LOWER, LIP_RADIUS) * g.lower_face
    d[:, 1] -= 0.012 * lower
    d[:, 2] += 0.03 * lower
    d[topo.as_index(topo.LIPS_OUTER_LOWER[2:-2]), 1] -= 0.02  # outer edge rolls up more
    upper = g.near(topo.LIPS_OUTER_UPPER + topo.LIPS_INNER_UPPER, LIP_RADIUS) * (1 - g.lower_face)
    d[:, 1] -= 0.02 * upper
    return d


def _corner_pull(g: FaceGeometry, side: str, shift) -> np.ndarray:
    d = np.zeros_like(g.V)
    w = g.near([g.corner(side)], CORNER_RADIUS)
    d[:, 0] = shift[0] * g.outward(side) * w
    d[:, 1] = shift[1] * w
    return d


def _lip_lift(g: FaceGeometry, group, lower: bool, dy: float) -> np.ndarray:
    """Move one lip vertically, most at its centre, fading toward the corners."""
    d = np.zeros_like(g.V)
    side_w = g.lower_face if lower else 1 - g.lower_face
    centre = 1 - 0.6 * np.clip(np.abs(g.V[:, 0] - g.mouth_center[0]) / (0.5 * g.mouth_width), 0, 1)
    d[:, 1] = dy * g.near(group, LIP_RADIUS) * side_w * centre
    return d


# -- brows and eyes ------------------------------------------------------------------------
def _above_eyes(g: FaceGeometry) -> np.ndarray:
    """(478,) 1 on the forehead and brows, 0 from the upper eyelids down: brows move skin,
    not the eye corners."""
    lids = g.V[topo.as_index(topo.EYE_L_UPPER + topo.EYE_R_UPPER), 1].min()
    return _smoothstep((lids - g.V[:, 1]) / 0.04)


def _brow_shift(g: FaceGeometry, group, dx: float = 0.0, dy: float = 0.0):
    d = np.zeros_like(g.V)
    w = g.near(group, BROW_RADIUS) * _above_eyes(g)
    d[:, 0], d[:, 1] = dx * w, dy * w
    return d


def _eye(side: str):
    if side == "L":
        return topo.EYE_L_UPPER, topo.EYE_L_LOWER, topo.IRIS_L, topo.BROW_L_UPPER + topo.BROW_L_LOWER
    return topo.EYE_R_UPPER, topo.EYE_R_LOWER, topo.IRIS_R, topo.BROW_R_UPPER + topo.BROW_R_LOWER


def _spread_from(g: FaceGeometry, index, disp: np.ndarray, radius: float, mask) -> np.ndarray:
    """Spread displacements given at landmarks ``index`` to nearby skin (nearest landmark)."""
    idx = topo.as_index(index)
    dist = np.linalg.norm(g.V[:, None, :2] - g.V[idx][None, :, :2], axis=-1)  # (478, n)
    nearest = dist.argmin(1)
    w = _gauss(dist.min(1), radius) * mask
    d = disp[nearest] * w[:, None]
    d[idx] = disp
    return d


def _lid_move(g: FaceGeometry, side: str, upper_frac: float, lower_frac: float) -> np.ndarray:
    """Move the lids toward each other: the upper by ``upper_frac`` of the opening (negative
    = up, wider), the lower by ``lower_frac``. The iris is carried between them."""
    up, lo, iris, _ = _eye(side)
    U, L = g.V[topo.as_index(up)], g.V[topo.as_index(lo)]
    gap = L - U  # (9, 3) from upper to lower lid, per column
    gap[:, [0, 2]] = 0.0
    above = (g.V[:, 1] < U[:, 1].max()).astype(float)
    d = _spread_from(g, up, upper_frac * gap, LID_SKIN_RADIUS, above)
    below = (g.V[:, 1] > L[:, 1].min()).astype(float)
    d += _spread_from(g, lo, -lower_frac * gap, LID_SKIN_RADIUS * 0.7, below)
    # Iris points ride along at their relative height between the lids.
    for k in topo.as_index(iris):
        col = np.abs(U[:, 0] - g.V[k, 0]).argmin()
        a = np.clip((g.V[k, 1] - U[col, 1]) / max(gap[col, 1], 1e-6), 0, 1)
        d[k, 1] = (1 - a) * upper_frac * gap[col, 1] - a * lower_frac * gap[col, 1]
    return d


def _blink(side):
    return lambda g: _lid_move(g, side, LID_CLOSE, 1 - LID_CLOSE)


def _squint(side):
    return lambda g: _lid_move(g, side, 0.05, 0.3)


def _wide(side):
    return lambda g: _lid_move(g, side, -0.25, 0.0)


def _brow_down(side):
    def f(g):
        brow = _eye(side)[3]
        inward = -g.outward(side)
        return _brow_shift(g, brow, dx=0.012 * inward, dy=0.03)
    return f


def _brow_outer_up(side):
    def f(g):
        upper = topo.BROW_L_UPPER if side == "L" else topo.BROW_R_UPPER
        lower = topo.BROW_L_LOWER if side == "L" else topo.BROW_R_LOWER
        return _brow_shift(g, upper[:2] + lower[:2], dy=-BROW_SHIFT)
    return f


def brow_inner_up(g: FaceGeometry) -> np.ndarray:
    inner = topo.BROW_R_UPPER[-2:] + topo.BROW_R_LOWER[-2:] + topo.BROW_L_UPPER[-2:] + topo.BROW_L_LOWER[-2:]
    return _brow_shift(g, inner, dy=-BROW_SHIFT)


ACTION_FIELDS = {
    "jawOpen": jaw_open,
    "mouthClose": mouth_close,
    "mouthFunnel": mouth_funnel,
    "mouthPucker": mouth_pucker,
    "mouthRollLower": mouth_roll_lower,
    "mouthSmileL": lambda g: _corner_pull(g, "L", SMILE_SHIFT),
    "mouthSmileR": lambda g: _corner_pull(g, "R", SMILE_SHIFT),
    "mouthStretchL": lambda g: _corner_pull(g, "L", STRETCH_SHIFT),
    "mouthStretchR": lambda g: _corner_pull(g, "R", STRETCH_SHIFT),
    "mouthFrownL": lambda g: _corner_pull(g, "L", FROWN_SHIFT),
    "mouthFrownR": lambda g: _corner_pull(g, "R", FROWN_SHIFT),
    "upperLipRaise": lambda g: _lip_lift(g, topo.LIPS_OUTER_UPPER + topo.LIPS_INNER_UPPER, lower=False, dy=-0.03),
    "lowerLipDown": lambda g: _lip_lift(g, topo.LIPS_OUTER_LOWER + topo.LIPS_INNER_LOWER, lower=True, dy=0.035),
    "browInnerUp": brow_inner_up,
    "browDownL": _brow_down("L"),
    "browDownR": _brow_down("R"),
    "browOuterUpL": _brow_outer_up("L"),
    "browOuterUpR": _brow_outer_up("R"),
    "eyeBlinkL": _blink("L"),
    "eyeBlinkR": _blink("R"),
    "eyeSquintL": _squint("L"),
    "eyeSquintR": _squint("R"),
    "eyeWideL": _wide("L"),
    "eyeWideR": _wide("R"),
}
assert tuple(ACTION_FIELDS) == ACTIONS, "every action needs exactly one field, in ACTIONS order"


def build_basis(neutral: np.ndarray) -> np.ndarray:
    """(A, 478, 3) displacement fields of every action on this neutral face."""
    g = FaceGeometry(np.asarray(neutral, np.float64))
    return np.stack([ACTION_FIELDS[name](g) for name in ACTIONS]).astype(np.float32)
