"""How each source acquires and stores its films, measured from the films, and re-rendering a film
in another source's style: the counterfactual half of the shortcut report.

A style is what differs by institution rather than by disease: the longer side in pixels, the JPEG
quality the files were stored at (read from their quantisation tables), the grey values at the
1st, 50th and 99th percentiles, and the black strips along each edge. `measure_styles` takes them
from a set of films (the bench uses the model's training split), so the counterfactual follows
the data rather than a hand-written table.

`render_in_style(image, style)` brings a film into a style and back to its own shape: its own black
border is cropped, its grey levels mapped piecewise-linearly onto the style's percentiles, it is
brought down to the style's longer side (never up: detail cannot be added), given the style's
border, JPEG re-encoded at the style's quality, and resized back. A model that reads lungs gives
the same label before and after.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DARK = 12  # grey value below which an edge row or column counts as black border
PERCENTILES = (1, 50, 99)


@dataclass(frozen=True)
class AcquisitionStyle:
    source: str
    classes: tuple[str, ...]  # the labels this source's films carry
    n: int  # films measured
    longer_side: int  # median
    jpeg_quality: int | None  # median estimated quality; None when the films were not JPEG
    percentiles: tuple[float, float, float]  # median grey value at the 1st, 50th, 99th percentile
    border: tuple[float, float, float, float]  # mean black strip, top/bottom/left/right, share of the side

    def to_dict(self) -> dict:
        return asdict(self)


def jpeg_quality(path) -> int | None:
    """The libjpeg quality (1-100) whose luminance table is closest to the file's, or None."""
    try:
        with Image.open(path) as image:
            table = getattr(image, "quantization", None) or {}
            observed = np.array(table.get(0, []), dtype=np.float64)
    except OSError:
        return None
    if observed.size != 64:
        return None
    errors = [np.abs(_luminance_table(q) - observed).mean() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def _luminance_table(quality: int) -> np.ndarray:
    """libjpeg's scaling of the standard table (the table Pillow writes at quality 50)."""
    global _STANDARD
    if _STANDARD is None:
        buffer = io.BytesIO()
        Image.new("L", (8, 8)).save(buffer, format="JPEG", quality=50)
        with Image.open(io.BytesIO(buffer.getvalue())) as image:
            _STANDARD = np.array(image.quantization[0], dtype=np.float64)
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_STANDARD * scale + 50) / 100), 1, 255)


_STANDARD = None


def border_widths(image: np.ndarray) -> tuple[int, int, int, int]:
    """Rows/columns of black strip along the top, bottom, left and right edge."""
    rows, cols = image.mean(axis=1), image.mean(axis=0)

    def run(profile):
        bright = np.nonzero(profile >= DARK)[0]
        return int(bright[0]) if bright.size else len(profile)

    return run(rows), run(rows[::-1]), run(cols), run(cols[::-1])


def crop_border(image: np.ndarray) -> np.ndarray:
    top, bottom, left, right = border_widths(image)
    height, width = image.shape
    if top + bottom > height // 2 or left + right > width // 2:  # a dark film, not a border
        return image
    return image[top:height - bottom, left:width - right]


def measure_styles(images, labels, sources, qualities=None) -> dict[str, AcquisitionStyle]:
    """One style per source from its films (uint8 (H, W) arrays at their stored size)."""
    qualities = list(qualities) if qualities is not None else [None] * len(images)
    groups: dict[str, list[int]] = {}
    for index, source in enumerate(sources):
        groups.setdefault(source, []).append(index)
    styles = {}
    for source, members in sorted(groups.items()):
        films = [images[i] for i in members]
        known = [qualities[i] for i in members if qualities[i] is not None]
        borders = np.array([np.divide(border_widths(f), (f.shape[0], f.shape[0], f.shape[1], f.shape[1])) for f in films])
        styles[source] = AcquisitionStyle(
            source=source,
            classes=tuple(sorted({labels[i] for i in members})),
            n=len(films),
            longer_side=int(np.median([max(f.shape) for f in films])),
            jpeg_quality=int(np.median(known)) if known else None,
            percentiles=tuple(float(v) for v in np.median([np.percentile(f, PERCENTILES) for f in films], axis=0)),
            border=tuple(float(v) for v in borders.mean(axis=0)),
        )
    return styles


def _remap_intensity(image: np.ndarray, target) -> np.ndarray:
    own = np.percentile(image, PERCENTILES)
    target = np.asarray(target, dtype=np.float64)
    if np.all(np.diff(own) > 0) and np.all(np.diff(target) > 0):
        values = np.interp(image, own, target)
        # beyond the 1st/99th percentile, continue the outer segments' slopes
        low, high = image < own[0], image > own[-1]
        values[low] = target[0] + (image[low] - own[0]) * (target[1] - target[0]) / (own[1] - own[0])
        values[high] = target[-1] + (image[high] - own[-1]) * (target[-1] - target[1]) / (own[-1] - own[1])
    else:  # a flat film: shift it to the style's median
        values = image.astype(np.float64) - own[1] + target[1]
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def render_in_style(image: np.ndarray, style: AcquisitionStyle) -> np.ndarray:
    """`image` (uint8 (H, W)) as `style`'s source would have stored it, back at (H, W)."""
    height, width = image.shape
    film = _remap_intensity(crop_border(image), style.percentiles)
    picture = Image.fromarray(film)
    longer = max(picture.size)
    if style.longer_side < longer:
        scale = style.longer_side / longer
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 Image.Resampling.LANCZOS)
    film = np.array(picture)
    h, w = film.shape
    top, bottom, left, right = (round(style.border[0] * h), round(style.border[1] * h),
                                round(style.border[2] * w), round(style.border[3] * w))
    film[:top], film[h - bottom:], film[:, :left], film[:, w - right:] = 0, 0, 0, 0
    picture = Image.fromarray(film)
    if style.jpeg_quality is not None:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=style.jpeg_quality)
        picture = Image.open(io.BytesIO(buffer.getvalue()))
    return np.asarray(picture.convert("L").resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def styles_from_files(paths, labels, sources) -> dict[str, AcquisitionStyle]:
    """`measure_styles` on image files, with the JPEG quality read from each file."""
    from ..decode.images import load_image_file

    paths = [Path(p) for p in paths]
    return measure_styles([load_image_file(p) for p in paths], labels, sources, [jpeg_quality(p) for p in paths])


def styles_from_samples(samples, per_source: int = 60) -> dict[str, AcquisitionStyle]:
    """`styles_from_files` on the first `per_source` films of each source (`data.Sample`s, the
    source from the manifest's origin): how the shortcut report and counterfactual augmentation
    measure the styles on a training split."""
    counts: dict[str, int] = {}
    chosen = []
    for sample in samples:
        source = sample.source
        if counts.get(source, 0) < per_source:
            chosen.append(sample)
            counts[source] = counts.get(source, 0) + 1
    return styles_from_files([s.path for s in chosen], [s.label for s in chosen], [s.source for s in chosen])
