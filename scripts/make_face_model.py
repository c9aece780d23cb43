"""Builds src/avatar/assets/face_model.npz: the canonical face and the mesh triangles.

The canonical face is the bundled public-domain portrait's face mesh, rotated to a frontal
frame and made left-right symmetric, in units of face width. Run once; the result ships.
    python scripts/make_face_model.py
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from avatar.face import geometry, topology as topo
from avatar.face.tracker import FaceTracker
from avatar.image import load_image

ASSETS = Path(__file__).resolve().parents[1] / "src" / "avatar" / "assets"


def mesh_triangles() -> np.ndarray:
    """Triangles of MediaPipe's tesselation (it ships edges): every 3-clique of edges."""
    import mediapipe as mp

    edges = mp.solutions.face_mesh.FACEMESH_TESSELATION
    adj = collections.defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]}
    return np.array(sorted(tris), np.int32)


def mirror_index(points: np.ndarray) -> np.ndarray:
    """For each point of a frontal, centred face, the index of its mirror image."""
    mirrored = points * np.array([-1, 1, 1])
    d = np.linalg.norm(points[:, None, :] - mirrored[None, :, :], axis=-1)
    return d.argmin(1).astype(np.int32)


def main() -> None:
    image = load_image(ASSETS / "astronaut.jpg")
    with FaceTracker(static=True) as tracker:
        face = tracker.detect(image)[0]
    pts = face.landmarks.astype(np.float64)
    frame = geometry.face_frame(pts)
    canon = frame.to_canonical(pts)
    mirror = mirror_index(canon)
    canonical = (0.5 * (canon + canon[mirror] * np.array([-1, 1, 1]))).astype(np.float32)
    np.savez_compressed(ASSETS / "face_model.npz", canonical=canonical,
                        triangles=mesh_triangles(), mirror=mirror)
    print(f"wrote {ASSETS / 'face_model.npz'}: {len(canonical)} points")


if __name__ == "__main__":
    main()
