"""Harmonising what differs by institution rather than by disease, before a film is resized.

In cxr-dev each class comes mostly from its own institutions, which store films at different
sizes (224 px against up to 512), with different grey-level distributions and black strips
(docs/shortcuts.md). `harmonise(image, crop=, detail_size=, intensity=)` removes those
differences from one film; `preprocessing.resize_images` calls it for every film, at training and
at inference (the Keras predictor and the serving worker alike), from the switches stored in the
model's `PreprocessingSpec`. NumPy, Pillow and scikit-image only: no TensorFlow.

Order: crop (black strips, then the body's or the lung fields' box), bring the longer side down to
`detail_size` (a common level of detail: a 512 px film keeps no finer detail than a 224 px one),
then equalise the intensities.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

CROPS = ("none", "body", "lungs")
INTENSITIES = ("none", "equalize", "clahe", "standardize")
LUNG_MARGIN = 0.08  # share of the film kept around the lung fields' box: the costophrenic angles and apices
STANDARD_SPREAD = 40.0  # grey levels per standard deviation after standardisation (128 +- 3.2 sd fills 0-255)


def harmonise(image: np.ndarray, *, crop: str = "none", detail_size: int | None = None, intensity: str = "none") -> np.ndarray:
    """uint8 (H, W) -> uint8 (h, w): cropped, brought to a common detail level, equalised."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, not {crop!r}.")
    if intensity not in INTENSITIES:
        raise ValueError(f"intensity must be one of {INTENSITIES}, not {intensity!r}.")
    film = crop_film(image, crop)
    if detail_size:
        film = reduce_detail(film, detail_size)
    return equalise(film, intensity)


def crop_film(image: np.ndarray, crop: str) -> np.ndarray:
    """Black strips off, then the body's box ("body") or the lung fields' box with a margin ("lungs")."""
    from .acquisition import crop_border
    from .lungs import body_box, lung_fields

    if crop == "none":
        return image
    film = crop_border(image)
    if crop == "body":
        top, bottom, left, right = body_box(film)
    else:
        mask = lung_fields(film).mask
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        pad_y, pad_x = int(LUNG_MARGIN * film.shape[0]), int(LUNG_MARGIN * film.shape[1])
        top, bottom = max(0, rows[0] - pad_y), min(film.shape[0], rows[-1] + 1 + pad_y)
        left, right = max(0, cols[0] - pad_x), min(film.shape[1], cols[-1] + 1 + pad_x)
    cropped = film[top:bottom, left:right]
    return cropped if min(cropped.shape) >= 8 else film


def reduce_detail(image: np.ndarray, detail_size: int) -> np.ndarray:
    """The longer side brought down to `detail_size` (antialiased), never up: detail cannot be added."""
    height, width = image.shape
    longer = max(height, width)
    if longer <= detail_size:
        return image
    scale = detail_size / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    reduced = Image.fromarray(image.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.round(np.asarray(reduced)), 0, 255).astype(np.uint8)


def equalise(image: np.ndarray, intensity: str) -> np.ndarray:
    """Global histogram equalisation, CLAHE (scikit-image), or per-image standardisation."""
    from skimage import exposure

    if intensity == "none" or float(np.ptp(image)) == 0.0:
        return image
    if intensity == "equalize":
        values = exposure.equalize_hist(image, nbins=256)
    elif intensity == "clahe":
        values = exposure.equalize_adapthist(image, clip_limit=0.01)
    else:
        grey = image.astype(np.float64)
        values = (128.0 + STANDARD_SPREAD * (grey - grey.mean()) / grey.std()) / 255.0
    return np.clip(np.round(values * 255.0), 0, 255).astype(np.uint8)
