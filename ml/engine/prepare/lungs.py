"""Lung-field masks computed from the chest film itself, for the shortcut report.

No model and no training data: classical image processing with scikit-image, so the mask cannot
have learnt the same shortcuts as the classifier it is used to judge.

1. The film is brought to a 256 px working copy, its intensities stretched between the 1st and
   99th percentiles and smoothed (one exposure scale for every source).
2. Body: the very dark pixels reachable from the image edge are air outside the patient (a
   flood from the border); the rest, opened, filled and kept as its largest piece, is the body.
   A tightly cropped film has no such air and its body is the whole image.
3. Lungs: pixels darker than Otsu's threshold computed inside the body, at least a few pixels
   inside the body's edge and outside a 5% frame along the film's edges (dark soft tissue beside
   the chest wall and air above the shoulders would otherwise join a lung), cut at the midline
   (the trachea would join the two) and opened. The largest piece on each side of the midline is
   that side's lung; closed with a large disk and filled, so opacities that brighten part of a
   lung (what a COVID-19 film shows) stay inside its field.
4. Plausibility: each piece fills at least 70% of its convex hull, is not pressed flat against
   the top of the searched area (a lung leaking into the shoulders is), has its centre between
   25% and 75% of the film's height and covers at least 4% of the film; both together 10-60%.
   Anything else (and any error on an odd input) gives the fallback: two ellipses where lungs sit
   on a standard frontal film, with `fallback=True` and the reason. This never raises.

On cxr-dev about half to three quarters of films are segmented, and some segmented masks still
reach into a shoulder; docs/shortcuts.md shows and counts them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

WORK_SIZE = 256
# Fallback lung fields, (centre row, centre column, half height, half width) as fractions of the
# film: where the lungs of an adult frontal film usually sit.
FALLBACK_ELLIPSES = ((0.46, 0.30, 0.28, 0.15), (0.46, 0.70, 0.28, 0.15))
MIN_LUNG_SHARE, MIN_TOTAL_SHARE, MAX_TOTAL_SHARE = 0.04, 0.10, 0.60
MARGIN = 6  # working-size pixels kept clear of the body's edge
MIN_SOLIDITY = 0.7  # a lung fills most of its convex hull; a region leaking into the shoulders does not
FLAT_TOP = 0.6  # share of a region's width lying along the top edge of the searched area
FRAME = 0.05  # share of the film along each edge where no lung is looked for


@dataclass(frozen=True)
class LungFields:
    mask: np.ndarray  # bool (H, W): True inside either lung field
    fallback: bool  # True when `mask` is the standard two-ellipse guess, not this film's lungs
    reason: str = ""  # why the fallback was used


def lung_fields(image, size=None) -> LungFields:
    """Lung-field mask of a grey film (any dtype, 2-D or with a channel axis), at `size`: an int
    (square), (height, width), or None for the image's own shape."""
    try:
        grey = _as_grey(image)
    except Exception as error:  # an odd input must give a mask, never an error
        return _fallback(_shape(size, (WORK_SIZE, WORK_SIZE)), f"unreadable image ({error})")
    shape = _shape(size, grey.shape)
    if grey.size == 0 or float(np.ptp(grey)) < 1e-6:
        return _fallback(shape, "blank image")
    try:
        work = _working_copy(grey)
        lungs, problem = _segment(work)
    except Exception as error:  # scikit-image on a degenerate film: fall back, say so
        return _fallback(shape, f"segmentation failed ({error})")
    if problem:
        return _fallback(shape, problem)
    return LungFields(mask=_resize_mask(lungs, shape), fallback=False)


def body_box(image) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the body in `image`'s pixels, end-exclusive: the box of the
    body found as in step 2 (air flooded in from the edges). The whole image when none is found
    or on an odd input, so a crop by it never loses the chest."""
    height, width = np.shape(image)[:2]
    if np.ptp(image) == 0:
        return 0, height, 0, width
    try:
        body = _body(_working_copy(_as_grey(image)))
        rows, cols = np.nonzero(body.any(axis=1))[0], np.nonzero(body.any(axis=0))[0]
    except Exception:  # a degenerate film keeps its whole frame
        return 0, height, 0, width
    if rows.size == 0 or body.mean() < 0.2:
        return 0, height, 0, width
    scale_y, scale_x = height / body.shape[0], width / body.shape[1]
    return (int(rows[0] * scale_y), int(np.ceil((rows[-1] + 1) * scale_y)),
            int(cols[0] * scale_x), int(np.ceil((cols[-1] + 1) * scale_x)))


def fallback_mask(shape) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    y, x = (rows + 0.5) / shape[0], (cols + 0.5) / shape[1]
    mask = np.zeros(shape, dtype=bool)
    for cy, cx, ry, rx in FALLBACK_ELLIPSES:
        mask |= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
    return mask


def _fallback(shape, reason: str) -> LungFields:
    return LungFields(mask=fallback_mask(shape), fallback=True, reason=reason)


def _shape(size, default) -> tuple[int, int]:
    if size is None:
        return int(default[0]) or 1, int(default[1]) or 1
    if np.isscalar(size):
        return int(size), int(size)
    return int(size[0]), int(size[1])


def _as_grey(image) -> np.ndarray:
    source = np.asarray(image)
    grey = np.asarray(source, dtype=np.float64)
    if grey.ndim == 3:  # (H, W, C): average the channels
        grey = grey.mean(axis=2)
    if grey.ndim != 2:
        raise ValueError(f"expected a 2-D film, got shape {grey.shape}")
    if source.dtype.kind in "biu":  # integers hold no NaN or infinity; the check costs a full-size copy
        return grey
    return np.nan_to_num(grey, nan=0.0, posinf=0.0, neginf=0.0)


def _working_copy(grey: np.ndarray) -> np.ndarray:
    from skimage.filters import gaussian

    work = _shrink(grey, WORK_SIZE)
    low, high = np.percentile(work, (1, 99))
    if high <= low:
        low, high = float(work.min()), float(work.max())
    work = np.clip((work - low) / (high - low), 0.0, 1.0)
    return gaussian(work, sigma=2)


def _shrink(grey: np.ndarray, size: int) -> np.ndarray:
    """`grey` (float64, 2-D) at (size, size): the same numbers, to float rounding, as scikit-image's
    `resize(grey, (size, size), order=1, anti_aliasing=True)`, which the working copy was first
    made with and so the body crops existing models were trained on. That resize smooths the whole
    film with a gaussian and then samples it; here each axis's smoothing and linear interpolation
    is one sparse (size, n) matrix, so only the values the samples use are computed (3 ms against
    27 ms on a 1024 px film)."""
    rows, cols = _resize_operator(grey.shape[0], size), _resize_operator(grey.shape[1], size)
    return np.ascontiguousarray((cols @ (rows @ grey).T).T)


@lru_cache(maxsize=64)  # films come in a few sizes; only read by the products in _shrink
def _resize_operator(n: int, size: int):
    """Sparse (size, n) matrix taking a line of n values to size values as scikit-image's resize
    does along one axis: a gaussian of sigma (n / size - 1) / 2 when shrinking (scipy's kernel,
    truncated at 4 sigma), then linear interpolation at the output pixels' centres, the line
    mirrored at its ends (scipy's "mirror", scikit-image's default "reflect")."""
    from scipy import sparse

    factor = n / size
    centres = (np.arange(size) + 0.5) * factor - 0.5
    below = np.floor(centres)
    above_share = centres - below
    out_index = np.repeat(np.arange(size), 2)
    in_index = np.stack([below, below + 1], axis=1).ravel().astype(np.int64)
    weights = np.stack([1.0 - above_share, above_share], axis=1).ravel()
    sigma = max(0.0, (factor - 1) / 2)
    if sigma > 1e-15:  # scipy skips an axis whose sigma is (nearly) zero
        radius = int(4.0 * sigma + 0.5)
        taps = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 / sigma**2 * taps.astype(np.float64) ** 2)
        kernel /= kernel.sum()
        out_index = np.repeat(out_index, taps.size)
        weights = (weights[:, None] * kernel[None, :]).ravel()
        in_index = (in_index[:, None] + taps[None, :]).ravel()
    return sparse.csr_matrix((weights, (out_index, _mirror(in_index, n))), shape=(size, n))


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Indices outside 0..n-1 reflected about the end pixels (-1 -> 1, n -> n-2), repeatedly."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index > n - 1, period - index, index)


def _body(work: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    from skimage import measure, morphology

    outside = _air_reaching_the_edge(work < 0.08)
    body = ndimage.binary_opening(~outside, morphology.disk(5))
    labels = measure.label(body)
    if labels.max() == 0:
        return np.ones_like(body)
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(labels == largest)


def _air_reaching_the_edge(air: np.ndarray) -> np.ndarray:
    """The pieces of `air` (8-connected) that touch the image's edge: the flood from the border.
    The same mask as scikit-image's morphological reconstruction from the edge pixels inside `air`,
    which was used first, at a small part of its cost (0.4 ms against 11 ms at 256 px)."""
    from scipy import ndimage

    labels, _ = ndimage.label(air, structure=np.ones((3, 3)))
    on_edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, on_edge[on_edge > 0])


def _segment(work: np.ndarray) -> tuple[np.ndarray | None, str]:
    """(lung mask at the working size, "") or (None, why it is implausible)."""
    from scipy import ndimage
    from skimage import measure, morphology
    from skimage.filters import threshold_otsu

    body = _body(work)
    if body.mean() < 0.2:
        return None, "no body found"
    inside = work[body]
    if float(np.ptp(inside)) < 1e-3:
        return None, "no contrast inside the body"
    # Away from the body's edge (the dark soft tissue and air beside the chest wall), and cut at
    # the midline so the two lungs never merge through the trachea.
    core = ndimage.binary_erosion(body, morphology.disk(MARGIN), border_value=1)
    dark = (work < threshold_otsu(inside)) & core
    middle = work.shape[1] // 2
    dark[:, middle - 2:middle + 2] = False
    frame = int(FRAME * work.shape[0])  # lungs do not reach the film's edge; dark shoulders and air do
    dark[:frame], dark[-frame:], dark[:, :frame], dark[:, -frame:] = False, False, False, False
    dark = ndimage.binary_opening(dark, morphology.disk(5))
    labels = measure.label(dark)
    pieces = measure.regionprops(labels)
    lungs = np.zeros_like(dark)
    for side, on_side in (("left", lambda c: c < middle), ("right", lambda c: c >= middle)):
        candidates = [r for r in pieces if on_side(r.centroid[1])]
        if not candidates:
            return None, f"no dark lung-like region on the {side}"
        largest = max(candidates, key=lambda r: r.area)
        piece = ndimage.binary_fill_holes(labels == largest.label)
        hull = morphology.convex_hull_image(piece)
        if piece.sum() < MIN_SOLIDITY * hull.sum() or _flat_topped(piece, frame):
            return None, f"the {side} dark region is not lung-shaped (it leaks beyond the chest)"
        if not 0.25 <= largest.centroid[0] / work.shape[0] <= 0.75:
            return None, f"the {side} dark region sits too high or too low for a lung"
        if hull.mean() < MIN_LUNG_SHARE:
            return None, f"the {side} lung region is too small ({hull.mean():.0%} of the film)"
        smooth = ndimage.binary_closing(piece, morphology.disk(12), border_value=0) | piece
        lungs |= ndimage.binary_fill_holes(smooth)
    total = float(lungs.mean())
    if not MIN_TOTAL_SHARE <= total <= MAX_TOTAL_SHARE:
        return None, f"the lung regions cover {total:.0%} of the film"
    return lungs, ""


def _flat_topped(piece: np.ndarray, frame: int) -> bool:
    """A lung's apex is rounded; a region pressed flat against the top of the searched area over
    most of its width is soft tissue or air above the shoulders that the lung leaked into."""
    cols = np.nonzero(piece.any(axis=0))[0]
    return np.count_nonzero(piece[frame]) > FLAT_TOP * (np.ptp(cols) + 1)


def _resize_mask(mask: np.ndarray, shape) -> np.ndarray:
    from skimage.transform import resize

    if mask.shape == tuple(shape):
        return mask
    return resize(mask.astype(np.float32), shape, order=1, anti_aliasing=False) >= 0.5


def overlay_png(image, fields: LungFields, *, max_side: int = 512) -> bytes:
    """The film with its lung mask outlined and tinted (red for the fallback guess), as PNG bytes:
    for a person to judge the masks."""
    import io

    from PIL import Image
    from skimage.segmentation import find_boundaries

    grey = _as_grey(image)
    grey = (grey - grey.min()) / max(float(np.ptp(grey)), 1e-6)
    mask = _resize_mask(fields.mask, grey.shape)
    colour = np.array([1.0, 0.2, 0.2]) if fields.fallback else np.array([0.1, 1.0, 0.3])
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb[mask] = 0.8 * rgb[mask] + 0.2 * colour
    rgb[find_boundaries(mask, mode="thick")] = colour
    picture = Image.fromarray(np.round(rgb * 255).astype(np.uint8))
    picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
