"""Reading portraits: any size, RGB/RGBA/grayscale, EXIF orientation respected."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar.errors import AvatarError

MIN_SIDE = 64  # smaller images cannot hold a trackable face


def load_image(path) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array. RGBA is composited on white; EXIF rotation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise AvatarError("file not found", str(path), "check the path of --image")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise AvatarError(f"cannot read the image ({e.__class__.__name__})", str(path),
                          "use a JPEG, PNG or WebP photo") from None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    rgb = np.asarray(im.convert("RGB"))
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise AvatarError(f"image is too small ({rgb.shape[1]}x{rgb.shape[0]})", str(path),
                          f"use a photo at least {MIN_SIDE} px on each side")
    return rgb


def fit_max_size(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Downscale so the longest side is at most ``max_size`` (never upscales)."""
    import cv2

    if not max_size or max(image.shape[:2]) <= max_size:
        return image
    h, w = image.shape[:2]
    k = max_size / max(h, w)
    return cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))),
                      interpolation=cv2.INTER_AREA)
