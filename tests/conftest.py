"""Shared fixtures: the bundled portrait and its face, tracked once per test session."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.image import bundled_portrait


@pytest.fixture(scope="session")
def portrait_path():
    return bundled_portrait()


@pytest.fixture(scope="session")
def portrait_image(portrait_path) -> np.ndarray:
    from avatar.image import load_image

    return load_image(portrait_path)


@pytest.fixture(scope="session")
def face_obs(portrait_image):
    from avatar.face.tracker import largest_face

    return largest_face(portrait_image, "portrait")


@pytest.fixture(scope="session")
def face_model(face_obs):
    from avatar.face.model import FaceModel

    return FaceModel.from_observation(face_obs)


@pytest.fixture(scope="session")
def renderer(portrait_image, face_model):
    from avatar.render.warp import WarpRenderer

    return WarpRenderer(portrait_image, face_model)
