"""Frame-quality measures against ground truth (METHODS.md, "Shared evaluation ideas").

Used on held-out real transitions (TANGO Table 4 reports PSNR) and self-reenactment.
Both take two RGB uint8 frames of one size.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar.errors import AvatarError

PEAK = 255.0  # the largest uint8 value (L in Wang et al. 2004)
SSIM_SIGMA = 1.5  # Gaussian window of Wang et al. 2004 ...
SSIM_WINDOW = 11  # ... 11 x 11 taps
SSIM_CROP = SSIM_WINDOW // 2  # drop the border where the window leaves the image ("valid")
SSIM_K1 = 0.01  # stabilisers C1 = (K1 L)^2, C2 = (K2 L)^2 (ibid.)
SSIM_K2 = 0.03
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 Y from RGB


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise AvatarError(f"frames to compare must be RGB of one size (got {a.shape} and {b.shape})",
                          "frame metrics", "compare a generated frame with the real frame it stands for")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all RGB values; inf for identical frames."""
    a, b = _pair(a, b)
    mse = cv2.norm(np.ascontiguousarray(a), np.ascontiguousarray(b), cv2.NORM_L2SQR) / a.size
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(PEAK**2 / mse))


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 BT.601 luma of an RGB uint8 frame, 0..255."""
    rgb = np.asarray(rgb)
    return cv2.transform(rgb.astype(np.float32), LUMA_WEIGHTS[None]).reshape(rgb.shape[:2])  # (H, W)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity on luma (Wang et al. 2004, Gaussian window); 1 when identical.

    float32 maps (variances of 0..255 values lose < 0.01 to rounding, against C2 = 58.5).
    """
    a, b = _pair(a, b)
    x, y = luma(a), luma(b)
    if min(x.shape) <= 2 * SSIM_CROP:
        raise AvatarError(f"frames of {x.shape} are too small for SSIM", "frame metrics",
                          f"use frames larger than {SSIM_WINDOW} px on each side")

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA)

    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    ssim_map = num / den
    crop = slice(SSIM_CROP, -SSIM_CROP)
    return float(ssim_map[crop, crop].mean())
