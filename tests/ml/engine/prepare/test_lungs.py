"""Lung-field masks (ml.engine.prepare.lungs) on films drawn in the test, whose true lungs are known."""

import numpy as np
import pytest

from ml.engine.prepare.lungs import _air_reaching_the_edge, _shrink, body_box, fallback_mask, lung_fields, overlay_png
from tests.shared_data import SHARED_DATA, needs

REAL_DATA = SHARED_DATA / "cxr-dev"


def ellipse(shape, cy, cx, ry, rx):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return ((rows / shape[0] - cy) / ry) ** 2 + ((cols / shape[1] - cx) / rx) ** 2 <= 1.0


def thorax(shape=(240, 200), seed=0, background=15):
    """Dark air, a bright body, two dark lungs, a bright mediastinum between them, noise.
    Returns (uint8 film, true lung mask)."""
    rng = np.random.default_rng(seed)
    film = np.full(shape, float(background))
    film[ellipse(shape, 0.58, 0.5, 0.52, 0.46)] = 170
    lungs = ellipse(shape, 0.47, 0.29, 0.28, 0.15) | ellipse(shape, 0.47, 0.71, 0.28, 0.15)
    film[lungs] = 70
    film[(np.abs(np.mgrid[0:shape[0], 0:shape[1]][1] / shape[1] - 0.5) < 0.07) & ~lungs] = 220
    film += rng.normal(0, 8, shape)
    return np.clip(film, 0, 255).astype(np.uint8), lungs


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("shape", [(240, 200), (512, 512), (180, 300)])
def test_mask_overlaps_the_true_lungs(shape):
    film, lungs = thorax(shape, seed=shape[0])
    fields = lung_fields(film)
    assert not fields.fallback, fields.reason
    assert iou(fields.mask, lungs) > 0.6


def test_tightly_cropped_film_without_air_still_segments():
    film, lungs = thorax((300, 260))
    crop = (slice(40, 270), slice(20, 240))
    fields = lung_fields(film[crop])
    assert not fields.fallback, fields.reason
    assert iou(fields.mask, lungs[crop]) > 0.6


def test_mask_is_returned_at_the_requested_size():
    film, _ = thorax()
    assert lung_fields(film, size=64).mask.shape == (64, 64)
    mask = lung_fields(film, size=(90, 70)).mask
    assert mask.shape == (90, 70) and mask.dtype == bool


def test_blank_film_falls_back_to_the_standard_lung_fields_and_says_so():
    fields = lung_fields(np.full((200, 180), 128, dtype=np.uint8))
    assert fields.fallback and fields.reason == "blank image"
    assert np.array_equal(fields.mask, fallback_mask((200, 180)))


def test_fallback_mask_is_two_lung_fields_either_side_of_the_midline():
    mask = fallback_mask((100, 100))
    assert mask[46, 30] and mask[46, 70] and not mask[46, 50]
    assert 0.15 < mask.mean() < 0.4


def test_body_without_dark_lungs_falls_back():
    film = np.full((200, 200), 10, dtype=np.uint8)
    film[ellipse((200, 200), 0.5, 0.5, 0.45, 0.4)] = 200
    fields = lung_fields(film)
    assert fields.fallback and fields.reason


@pytest.mark.parametrize("odd", [
    np.zeros((0, 0)), np.zeros(5), np.ones((3, 3)), np.full((50, 50), np.nan),
    np.random.default_rng(0).random((64, 64, 3)), np.zeros((40, 40, 1)), "not an image",
])
def test_odd_inputs_never_raise(odd):
    fields = lung_fields(odd, size=32)
    assert fields.mask.shape == (32, 32) and fields.fallback


def test_overlay_is_a_png_of_the_film():
    film, _ = thorax()
    png = overlay_png(film, lung_fields(film))
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("shape", [(1024, 1024), (900, 1100), (512, 512), (224, 224), (240, 200)])
def test_body_box_lies_where_the_body_is(shape):
    """A bright body on dark air, at sizes the working copy is shrunk from and enlarged to."""
    height, width = shape
    film, _ = thorax(shape)
    film[:] = np.clip(film, 40, None)  # the whole thorax is body, brighter than the air
    outside = ~ellipse(shape, 0.52, 0.5, 0.40, 0.36)
    film[outside] = np.random.default_rng(1).integers(0, 12, outside.sum())
    top, bottom, left, right = body_box(film)
    rows, cols = np.nonzero((~outside).any(axis=1))[0], np.nonzero((~outside).any(axis=0))[0]
    tolerance_y, tolerance_x = 0.02 * height, 0.02 * width
    assert abs(top - rows[0]) <= tolerance_y and abs(bottom - (rows[-1] + 1)) <= tolerance_y
    assert abs(left - cols[0]) <= tolerance_x and abs(right - (cols[-1] + 1)) <= tolerance_x


@pytest.mark.parametrize("shape", [(1024, 1024), (900, 1100), (512, 508), (224, 224), (256, 256), (300, 37), (5, 700), (1, 300)])
def test_working_copy_is_scikit_images_antialiased_resize(shape):
    """Existing models were trained on body crops found on scikit-image's resize; the faster
    resize must give the same working copy."""
    from skimage.transform import resize

    grey = np.random.default_rng(shape[0]).random(shape) * 255
    expected = resize(grey, (256, 256), order=1, anti_aliasing=True)
    assert np.abs(_shrink(grey, 256) - expected).max() < 1e-9


def test_air_is_flooded_from_the_edge_only():
    """Air reaching the edge, even through a diagonal step, is outside the body; a dark pocket
    enclosed by the body is not. The same as scikit-image's reconstruction from the edge."""
    from skimage import morphology

    air = np.zeros((40, 40), dtype=bool)
    air[:, :5] = True  # along the left edge
    air[5, 5], air[6, 6], air[7, 7] = True, True, True  # a diagonal path from it
    air[20:25, 20:25] = True  # an enclosed pocket
    outside = _air_reaching_the_edge(air)
    assert outside[:, :5].all() and outside[7, 7] and not outside[20:25, 20:25].any()
    rng = np.random.default_rng(0)
    for _ in range(5):
        air = rng.random((64, 64)) < 0.45
        edge = np.zeros_like(air)
        edge[[0, -1], :] = edge[:, [0, -1]] = True
        expected = morphology.reconstruction((air & edge).astype(np.uint8), air.astype(np.uint8)).astype(bool)
        assert np.array_equal(_air_reaching_the_edge(air), expected)


@pytest.mark.real_data
@needs(REAL_DATA)
def test_most_real_films_get_a_segmented_mask():
    from ml.engine import load_image_file

    normal, covid = sorted((REAL_DATA / "normal").glob("*.jpg")), sorted((REAL_DATA / "covid").glob("*.jpg"))
    assert normal and covid, f"no .jpg films in {REAL_DATA}/normal or /covid: nothing would be checked"
    files = normal[::95] + covid[::95]
    fields = [lung_fields(load_image_file(path)) for path in files]
    segmented = [f for f in fields if not f.fallback]
    assert len(segmented) >= len(fields) / 2
    assert all(0.1 <= f.mask.mean() <= 0.6 for f in segmented)
