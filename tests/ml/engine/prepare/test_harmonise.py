"""Harmonisation before resizing (ml.engine.prepare.harmonise), through the spec the predictor and the
serving worker rebuild from a model's record."""
import numpy as np
import pytest

from ml.engine import PreprocessingSpec, resize_images
from ml.engine.prepare.harmonise import crop_film, equalise, harmonise, reduce_detail
from tests.ml.engine.prepare.test_lungs import thorax


def framed(film, pad=30, strip=6):
    """The film on a wide dark-air margin with a black strip along the top: what a crop removes."""
    out = np.pad(film, pad, constant_values=10)
    out[:strip] = 0
    return out


def test_body_crop_removes_the_air_margin_and_the_black_strip():
    film, _ = thorax((240, 200))
    cropped = crop_film(framed(film), "body")
    assert cropped.shape[0] < film.shape[0] + 30 and cropped.shape[1] < film.shape[1] + 30
    assert cropped[:3].mean() > 40  # the top rows are body now, not the black strip


def test_lung_crop_is_tighter_than_the_body_and_keeps_the_lungs():
    film, lungs = thorax((240, 200))
    body = crop_film(film, "body")
    lung_box = crop_film(film, "lungs")
    assert lung_box.size < body.size
    rows = np.nonzero(lungs.any(axis=1))[0]
    assert lung_box.shape[0] >= 0.9 * (rows[-1] - rows[0])


def test_no_crop_leaves_the_film_alone():
    film, _ = thorax()
    assert crop_film(film, "none") is film


def test_detail_is_brought_down_never_up():
    big = np.random.default_rng(0).integers(0, 255, (512, 400), dtype=np.uint8)
    assert reduce_detail(big, 224).shape == (224, 175)
    small = big[:200, :150]
    assert reduce_detail(small, 224) is small


def test_detail_harmonisation_removes_fine_texture_a_small_film_cannot_have():
    rng = np.random.default_rng(1)
    noisy = np.clip(128 + rng.normal(0, 40, (512, 512)), 0, 255).astype(np.uint8)
    assert reduce_detail(noisy, 128).std() < 0.5 * noisy.std()


@pytest.mark.parametrize("intensity", ["equalize", "clahe", "standardize"])
def test_intensity_harmonisation_makes_a_dim_and_a_bright_copy_alike(intensity):
    film, _ = thorax((200, 200))
    dim = (film * 0.5).astype(np.uint8)
    bright = np.clip(film.astype(np.float64) * 0.8 + 60, 0, 255).astype(np.uint8)
    before = abs(np.median(dim) - np.median(bright))
    after = abs(np.median(equalise(dim, intensity).astype(float)) - np.median(equalise(bright, intensity).astype(float)))
    assert after < 0.25 * before


def test_equalisation_spreads_the_histogram_over_the_range():
    film, _ = thorax((200, 200))
    narrow = (80 + film // 4).astype(np.uint8)
    out = equalise(narrow, "equalize")
    assert out.dtype == np.uint8 and np.percentile(out, 99) - np.percentile(out, 1) > 200


def test_a_flat_film_stays_flat_without_an_error():
    out = harmonise(np.full((50, 50), 90, np.uint8), crop="body", detail_size=32, intensity="standardize")
    assert out.dtype == np.uint8 and out.shape == (32, 32) and np.ptp(out) == 0


def test_unknown_switches_are_refused():
    with pytest.raises(ValueError):
        harmonise(np.zeros((10, 10), np.uint8), crop="shoulders")
    with pytest.raises(ValueError):
        PreprocessingSpec.for_backbone("xception", 71, intensity="gamma")


def test_spec_keeps_the_switches_and_old_records_load_without_them():
    spec = PreprocessingSpec.for_backbone("xception", 71, crop="body", detail_size=224, intensity="equalize")
    assert PreprocessingSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in PreprocessingSpec.for_backbone("xception", 71).to_dict().items()
           if k not in ("crop", "detail_size", "intensity")}
    assert not PreprocessingSpec.from_dict(old).harmonises


def test_resize_images_applies_the_spec_harmonisation():
    """The function training, the predictor and the serving worker share harmonises each film first."""
    film = framed(thorax((240, 200))[0])
    spec = PreprocessingSpec.for_backbone("xception", 71, crop="body", detail_size=128, intensity="equalize")
    plain = PreprocessingSpec.for_backbone("xception", 71)
    by_hand = resize_images([harmonise(film, crop="body", detail_size=128, intensity="equalize")], plain)
    assert np.array_equal(resize_images([film], spec), by_hand)
    assert not np.array_equal(resize_images([film], plain), by_hand)
