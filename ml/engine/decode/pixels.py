"""The error every undecodable image becomes, and the pixel checks PNG, JPEG and DICOM decoding share.

The bottom of `decode`: `images` and `dicom` both import it, so neither imports the other's helpers."""
from __future__ import annotations

import numpy as np


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read; the message is meant for the person who sent them."""


def check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    """Called on the header's size, before any decompression, so a small file cannot claim huge memory."""
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"The image is {width}x{height} pixels, more than the {max_pixels:,} pixels this portal accepts."
        )


def stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map the range present onto 0-255; a flat image becomes black."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ImageDecodeError("The image holds pixel values that are not numbers and cannot be read.")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) / (high - low) * 255.0).astype(np.uint8)
