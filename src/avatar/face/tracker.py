"""MediaPipe face mesh (478 points with iris) on photos and video frames.

MediaPipe is imported lazily: importing avatar must not load models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.errors import AvatarError
from avatar.face import topology as topo
from avatar.native import quiet_stderr

# MediaPipe's face detector sees faces that fill at least ~1/5 of its input; for smaller
# faces we find boxes with the full-range detector and run the mesh on a crop.
CROP_CONTEXT = 2.2  # crop side as a multiple of the detected face box side
MAX_FACES = 5
MIN_CONFIDENCE = 0.5


@dataclass
class FaceObservation:
    """One tracked face in pixel coordinates of the image it was found in."""

    landmarks: np.ndarray  # (478, 3): x, y in pixels; z depth in pixels, larger = farther
    image_size: tuple[int, int]  # (width, height)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the face mesh."""
        xy = self.landmarks[:, :2]
        return (*xy.min(0), *xy.max(0))

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float((x1 - x0) * (y1 - y0))

    @property
    def face_width(self) -> float:
        """Distance between the widest points of the face oval, in pixels."""
        a, b = self.landmarks[topo.CHEEK_R, :2], self.landmarks[topo.CHEEK_L, :2]
        return float(np.linalg.norm(a - b))


class FaceTracker:
    """Face mesh with iris refinement. ``static=True`` for photos, False for video frames."""

    def __init__(self, static: bool = True, max_faces: int = MAX_FACES):
        with quiet_stderr():
            import mediapipe as mp  # heavy import, deferred until a tracker is made

            self._mp = mp
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=max_faces, refine_landmarks=True,
                min_detection_confidence=MIN_CONFIDENCE, min_tracking_confidence=MIN_CONFIDENCE)
        self._detector = None
        self._static = static

    def close(self) -> None:
        self._mesh.close()
        if self._detector is not None:
            self._detector.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- detection ----------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """All faces in an RGB uint8 image, largest first."""
        faces = self._mesh_faces(image)
        if self._static or not faces:  # photos: also look for faces too small for the mesh
            faces += self._faces_via_crops(image, skip=faces)
        return sorted(faces, key=lambda f: -f.area)

    def _mesh_faces(self, image: np.ndarray, offset=(0, 0), size=None) -> list[FaceObservation]:
        h, w = image.shape[:2]
        with quiet_stderr():
            result = self._mesh.process(np.ascontiguousarray(image))
        if not result.multi_face_landmarks:
            return []
        faces = []
        for lm in result.multi_face_landmarks:
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lm.landmark], np.float32)
            pts[:, 0] += offset[0]
            pts[:, 1] += offset[1]
            faces.append(FaceObservation(pts, size or (w, h)))
        return faces

    def _faces_via_crops(self, image: np.ndarray, skip=()) -> list[FaceObservation]:
        """Small faces: full-range face detection, then the mesh on a crop around each box."""
        if self._detector is None:
            with quiet_stderr():
                self._detector = self._mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=MIN_CONFIDENCE)
        h, w = image.shape[:2]
        with quiet_stderr():
            result = self._detector.process(np.ascontiguousarray(image))
        faces = []
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
            if any(f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3] for f in skip):
                continue  # the mesh has this face already
            side = max(box.width * w, box.height * h) * CROP_CONTEXT
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            crop = image[y0:y1, x0:x1]
            found = self._mesh_faces(crop, offset=(x0, y0), size=(w, h))
            faces.extend(found[:1])
        return faces


def largest_face(image: np.ndarray, where: str, tracker: FaceTracker | None = None,
                 warn=None) -> FaceObservation:
    """The largest face in a photo, or a clear AvatarError when there is none."""
    own = tracker is None
    tracker = tracker or FaceTracker(static=True)
    try:
        faces = tracker.detect(image)
    finally:
        if own:
            tracker.close()
    if not faces:
        raise AvatarError("no face found in the image", where,
                          "use a photo with one clearly visible, roughly frontal face")
    if len(faces) > 1 and warn is not None:
        warn(f"{where}: {len(faces)} faces found; animating the largest one")
    return faces[0]
