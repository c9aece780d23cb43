"""Named landmark groups of the MediaPipe face mesh (468 points + 10 iris points = 478).

"Left"/"right" are the subject's: the subject's left eye appears on the image's right.
Rings are ordered; lid and lip curves run from one corner to the other.
The full triangle list and the canonical face live in ``assets/face_model.npz``
(made by ``scripts/make_face_model.py``).
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 478
NUM_MESH_POINTS = 468  # without the iris refinement points

# Lips. Corners: outer 61 (right) / 291 (left), inner 78 (right) / 308 (left).
LIPS_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LIPS_ALL = sorted(set(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER + LIPS_INNER_UPPER + LIPS_INNER_LOWER))
MOUTH_CORNER_R, MOUTH_CORNER_L = 61, 291
INNER_CORNER_R, INNER_CORNER_L = 78, 308
UPPER_LIP_TOP, UPPER_LIP_BOTTOM = 0, 13  # outer and inner midpoints of the upper lip
LOWER_LIP_TOP, LOWER_LIP_BOTTOM = 14, 17  # inner and outer midpoints of the lower lip
# Inner-lip ring (closed polygon of the mouth opening), counter-clockwise on screen.
LIPS_INNER_RING = LIPS_INNER_LOWER + LIPS_INNER_UPPER[-2:0:-1]

# Eyes: lid margins from the outer corner to the inner corner.
EYE_R_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
EYE_R_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
EYE_L_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
EYE_L_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
EYE_R_RING = EYE_R_UPPER + EYE_R_LOWER[-2:0:-1]
EYE_L_RING = EYE_L_UPPER + EYE_L_LOWER[-2:0:-1]

# Irises: centre then four points on the rim.
IRIS_R = [468, 469, 470, 471, 472]
IRIS_L = [473, 474, 475, 476, 477]

# Brows, from the outer end to the inner end.
BROW_R_UPPER = [70, 63, 105, 66, 107]
BROW_R_LOWER = [46, 53, 52, 65, 55]
BROW_L_UPPER = [300, 293, 334, 296, 336]
BROW_L_LOWER = [276, 283, 282, 295, 285]

FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
             378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162,
             21, 54, 103, 67, 109]
FOREHEAD_TOP, CHIN = 10, 152
CHEEK_R, CHEEK_L = 234, 454  # widest points of the face oval, near the ears
NOSE_TIP = 1
NOSE_BRIDGE = [168, 6, 197, 195, 5]

# Points that move with the skull only (no expression): used to estimate head pose.
# (The glabella, 8/9/168, is left out: it moves when the brows do.)
RIGID_POINTS = sorted(set([5, 6, 195, 197, NOSE_TIP, 4, 33, 133, 263, 362, 10, 151,
                           234, 454, 127, 356, 162, 389, 93, 323]))


def as_index(group) -> np.ndarray:
    return np.asarray(group, dtype=np.int64)
