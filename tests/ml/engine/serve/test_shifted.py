"""The reduced-precision check off the training distribution: the validation films re-rendered in
the other sources' styles and at harmonisation's extremes, the per-film bound, and a check that
names every part with its figures, so a refusal says where it failed. Real OpenVINO int8 (NNCF)
against the Keras reference; the expected figures are recomputed here from the two models' outputs."""
import numpy as np
import pytest

from ml.engine import ServingPredictor, resize_images, validate_int8
from ml.engine.data.synthetic import make_chest_image
from ml.engine.prepare.acquisition import measure_styles
from ml.engine.serve.shifted import MAX_MOVED_FRACTION, MOVED_BY, VALIDATION_PART, extreme_styles, per_film_bound, shifted_parts
from tests.ml.engine.serve.test_int8 import exports  # noqa: F401  (a fixture: a random classifier's fp32 and int8 exports)


def films(seed, n, gain=1.0, side=90):
    rng = np.random.default_rng(seed)
    return [np.clip(make_chest_image(rng, side, opacities=i % 2 == 0) * gain, 0, 255).astype(np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def two_sources():
    """A dark source of small films and a bright one of larger films, each with both classes."""
    dark, bright = films(1, 6, gain=0.5, side=80), films(2, 6, gain=1.3, side=120)
    images = dark + bright
    labels = [1 - i % 2 for i in range(6)] * 2
    sources = ["Dark"] * 6 + ["Bright"] * 6
    return images, labels, sources, measure_styles(images, [str(label) for label in labels], sources)


def test_the_extremes_span_the_sources_styles(two_sources):
    *_, styles = two_sources
    low, high = extreme_styles(styles).values()
    assert low.percentiles == tuple(min(style.percentiles[i] for style in styles.values()) for i in range(3))
    assert high.percentiles == tuple(max(style.percentiles[i] for style in styles.values()) for i in range(3))
    assert (low.longer_side, high.longer_side) == (80, 120) and high.border == (0, 0, 0, 0)
    assert low.percentiles[1] < styles["Bright"].percentiles[1] and high.percentiles[2] > styles["Dark"].percentiles[2]


def test_each_film_is_rendered_in_every_other_sources_style_and_at_both_extremes(two_sources):
    images, labels, sources, styles = two_sources
    parts = shifted_parts(images, labels, styles, sources)
    assert list(parts) == ["validation films in Bright's style", "validation films in Dark's style",
                           "validation films at harmonisation's extreme: dark, small, coarse",
                           "validation films at harmonisation's extreme: bright, large, clean"]
    in_bright, bright_labels = parts["validation films in Bright's style"]
    assert len(in_bright) == 6 and bright_labels == labels[:6], "only the Dark films are re-rendered in Bright's style"
    assert all(film.shape == image.shape for film, image in zip(in_bright, images[:6]))
    assert np.median([film.mean() for film in in_bright]) > np.median([image.mean() for image in images[:6]]) + 20, "brighter"
    assert all(len(parts[name][0]) == 12 for name in list(parts)[2:])


def test_the_per_film_bound_allows_one_film_in_a_hundred_to_move_beyond_0_05():
    reference = np.tile([[0.3, 0.7]], (200, 1))
    moved = reference.copy()
    moved[:2, 0] += MOVED_BY + 0.01
    assert per_film_bound(reference, moved, 0) == pytest.approx(
        {"n_films": 200, "n_moved": 2, "moved_fraction": 0.01, "largest_move": 0.06, "bound_passed": True})
    moved[2, 0] += 0.2
    bound = per_film_bound(reference, moved, 0)
    assert (bound["n_moved"], bound["bound_passed"]) == (3, False) and bound["largest_move"] == pytest.approx(0.2)
    assert per_film_bound(reference, reference + MOVED_BY * 0.99, 0)["bound_passed"] and MAX_MOVED_FRACTION == 0.01


def test_the_int8_check_names_every_part_with_its_figures_and_a_refusal_names_the_parts_that_failed(exports, two_sources):  # noqa: F811
    artifact, fp32_dir, int8_dir, _ = exports
    images, labels, sources, styles = two_sources
    shifted = shifted_parts(images, labels, styles, sources)
    result = validate_int8(int8_dir, fp32_dir, artifact, images, labels, shifted=shifted)
    check = result["checks"]["int8"]
    assert list(check["parts"]) == [VALIDATION_PART, *shifted]

    keras, int8 = ServingPredictor.keras(artifact), ServingPredictor.openvino(int8_dir, precision="int8")
    for name, (films_of_part, part_labels) in {VALIDATION_PART: (images, labels), **shifted}.items():
        batch = resize_images(films_of_part, keras.spec)
        moved = np.abs(keras.forward(batch)[0][:, 0] - int8.forward(batch)[0][:, 0])
        flipped = np.mean((keras.forward(batch)[0][:, 0] >= 0.5) != (int8.forward(batch)[0][:, 0] >= 0.5))
        part = check["parts"][name]
        assert part["n_moved"] == int((moved > MOVED_BY).sum()) and part["largest_move"] == pytest.approx(moved.max(), abs=1e-6), name
        assert part["flip_fraction"] == pytest.approx(flipped), name
        holds = part["n_moved"] <= MAX_MOVED_FRACTION * len(moved) and flipped <= 0.005
        if part.get("auc_keras") is not None:
            holds = holds and part["auc_keras"] - part["auc_variant"] <= 0.005
        assert part["passed"] == holds, name
        assert (name in check["failed_parts"]) == (not holds), name
        if not holds:
            assert f"on the {name}:" in result["reason"], "a refusal names the part that failed"
    assert result["accepted"] == (check["failed_parts"] == [] and check["passed"])
