"""Reading portraits: any size, RGB/RGBA/grayscale (8 or 16 bit), CMYK, EXIF orientation
respected; an animated image (GIF, APNG, WebP) gives its first frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar.errors import AvatarError

MIN_SIDE = 64  # smaller images cannot hold a trackable face
# Longest side of the video made from a photo. Larger photos are downscaled: above ~4K the
# renderer and x264 need several GB and the mp4 exceeds what H.264 players decode.
MAX_VIDEO_SIDE = 4096
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # PIL modes of 16-bit grayscale files
_FORMATS_HINT = "use a JPEG, PNG or WebP photo"


def bundled_portrait() -> Path:
    """The portrait shipped with the package (the demo's and the web page's default)."""
    from importlib import resources

    return Path(str(resources.files("avatar.assets").joinpath("astronaut.jpg")))


def load_image(path) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array. RGBA is composited on white; EXIF rotation applied."""
    path = Path(path)
    if path.is_dir():
        raise AvatarError("is a folder, not a photo", str(path), "give the path of an image file")
    if not path.is_file():
        raise AvatarError("file not found", str(path), "check the path of --image")
    if path.stat().st_size == 0:
        raise AvatarError("the file is empty", str(path), _FORMATS_HINT)
    return decode_image(path, str(path))


def decode_image(source, where: str, max_side: int | None = None) -> np.ndarray:
    """:func:`load_image` of a path or a binary file object (an upload); ``max_side``
    refuses larger images from their header, before any pixel is decoded."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        # Large images are downscaled by the caller: PIL's size warning would only add a
        # multi-line note to stderr (its hard limit still raises, below).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = _open_upright(Image.open(source), where, max_side)
    except UnidentifiedImageError:
        raise AvatarError("cannot read the image: not an image file, or a format this program does not read",
                          where, _FORMATS_HINT) from None
    except Image.DecompressionBombError:
        raise AvatarError("cannot read the image: it has too many pixels to decode", where,
                          f"use a photo of at most {2 * Image.MAX_IMAGE_PIXELS // 1_000_000} megapixels") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for broken data
        raise AvatarError(f"cannot read the image: it is damaged or truncated ({e})", where,
                          "use an undamaged copy, or save the photo again as JPEG or PNG") from None
    if im.mode in SIXTEEN_BIT_MODES:
        im = Image.fromarray(_sixteen_to_eight_bit(np.asarray(im)))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    rgb = np.asarray(im.convert("RGB"))
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise AvatarError(f"image is too small ({rgb.shape[1]}x{rgb.shape[0]})", where,
                          f"use a photo at least {MIN_SIDE} px on each side")
    return rgb


def _open_upright(opened, where: str, max_side: int | None):
    """The decoded first frame of an opened PIL image, EXIF rotation applied."""
    from PIL import ImageOps

    with opened as im:
        if max_side and max(im.size) > max_side:
            raise AvatarError(f"image is too large ({im.size[0]}x{im.size[1]})", where,
                              f"use a photo at most {max_side} px on each side")
        im = ImageOps.exif_transpose(im)
        im.load()
        return im


def _sixteen_to_eight_bit(gray: np.ndarray) -> np.ndarray:
    """16-bit grayscale -> uint8 (PIL's own conversion clips at 255: a white image)."""
    return np.clip(np.round(gray.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)


def fit_max_size(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Downscale so the longest side is at most ``max_size`` (never upscales)."""
    import cv2

    if not max_size or max(image.shape[:2]) <= max_size:
        return image
    h, w = image.shape[:2]
    k = max_size / max(h, w)
    return cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))),
                      interpolation=cv2.INTER_AREA)
