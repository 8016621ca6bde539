"""The shortcut report (ml.engine.judge.shortcuts, ml.engine.prepare.acquisition) through the real Predictor.

Two small Keras models with weights set by hand stand for models that learnt a shortcut: one reads
only the film's top-left corner (where one class carries a bright marker), one reads only the
overall brightness (which one class's hospital sets higher). The report must expose each. A tiny
VGG16 with random weights runs the whole report, Grad-CAM included."""
import io

import keras
import numpy as np
import pytest
from PIL import Image

from ml.engine import Predictor, PreprocessingSpec
from ml.engine.judge.shortcuts import NEUTRAL_GREY, occlude, shortcut_report
from ml.engine.prepare.acquisition import AcquisitionStyle, border_widths, jpeg_quality, measure_styles, render_in_style


def thorax(size, rng, scale=1.0, marker=False):
    """A film with body, two dark lungs, mediastinum and noise; `marker`: a bright top-left square."""
    rows, cols = np.mgrid[0:size, 0:size] / size
    film = np.full((size, size), 15.0)
    film[((rows - 0.58) / 0.52) ** 2 + ((cols - 0.5) / 0.46) ** 2 <= 1] = 170
    for cx in (0.29, 0.71):
        film[((rows - 0.47) / 0.28) ** 2 + ((cols - cx) / 0.15) ** 2 <= 1] = 70
    film[(np.abs(cols - 0.5) < 0.06) & (rows > 0.15)] = 220
    film = film * scale + rng.normal(0, 8, film.shape)
    if marker:
        film[:size // 8, :size // 8] = 255
    return np.clip(film, 0, 255).astype(np.uint8)


def hand_weighted_predictor(crop=None, gain=8.0, centre=0.0):
    """P(covid) = sigmoid(2 * gain * (mean input - centre)) over the whole 71 px input or its
    top-left `crop` pixels (input scaled to [-1, 1] by the Xception preprocessing)."""
    size = 71
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Cropping2D(((0, size - crop), (0, size - crop)))(inputs) if crop else inputs
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(x)
    dense.set_weights([np.array([[gain / 3, -gain / 3]] * 3), np.array([-gain * centre, gain * centre])])
    record = {"preprocessing": PreprocessingSpec.for_backbone("xception", size).to_dict(),
              "class_names": ["covid", "normal"], "positive_class": "covid", "threshold": 0.5}
    return Predictor(keras.Model(inputs, outputs), record)


def test_occlusion_exposes_a_model_that_reads_a_corner_marker():
    rng = np.random.default_rng(1)
    labels = ["covid"] * 6 + ["normal"] * 6
    films = [thorax(120, rng, marker=label == "covid") for label in labels]
    report = shortcut_report(hand_weighted_predictor(crop=8), films, labels, ["one"] * 12, gradcam_limit=0, n_boot=20)
    auc = report["occlusion"]["overall"]
    assert auc["unoccluded"]["value"] == 1.0
    assert auc["lungs_blanked"]["value"] == 1.0
    assert auc["outside_lungs_blanked"]["value"] == pytest.approx(0.5)
    assert auc["unoccluded"]["n"] == 12 and auc["unoccluded"]["n_positive"] == 6


def test_counterfactual_styles_flip_a_model_that_reads_brightness():
    rng = np.random.default_rng(2)
    labels = ["covid"] * 6 + ["normal"] * 6
    sources = ["bright hospital"] * 6 + ["dark hospital"] * 6
    films = [thorax(160, rng, scale=1.15) for _ in range(6)] + [thorax(96, rng, scale=0.6) for _ in range(6)]
    styles = measure_styles(films, labels, sources)
    predictor = hand_weighted_predictor(centre=-0.38)
    assert [r["label"] for r in predictor.predict(films)] == labels  # it separates the hospitals
    flips = shortcut_report(predictor, films, labels, sources, styles=styles, gradcam_limit=0, n_boot=20)["counterfactual"]
    assert flips["flip_rate"]["n"] == 12  # one other-class style per film
    assert flips["flip_rate"]["value"] == 1.0
    assert set(flips["by_target_style"]) == {"bright hospital", "dark hospital"}


def test_occlude_sets_only_the_mask_to_neutral_grey():
    film = np.zeros((4, 4), dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, 2] = True
    out = occlude(film, mask)
    assert out[1, 2] == NEUTRAL_GREY and out.sum() == NEUTRAL_GREY and film.sum() == 0


def style(**changes):
    values = dict(source="s", classes=("normal",), n=1, longer_side=1000, jpeg_quality=None,
                  percentiles=(0.0, 128.0, 255.0), border=(0.0, 0.0, 0.0, 0.0))
    return AcquisitionStyle(**{**values, **changes})


def test_rendering_at_a_lower_resolution_loses_fine_detail_and_keeps_the_shape():
    stripes = np.tile(np.array([60, 200], dtype=np.uint8), (200, 100))
    out = render_in_style(stripes, style(longer_side=50))
    assert out.shape == stripes.shape
    assert np.abs(np.diff(out.astype(int), axis=1)).mean() < 0.2 * np.abs(np.diff(stripes.astype(int), axis=1)).mean()


def test_rendering_maps_grey_levels_onto_the_style_percentiles():
    film = np.random.default_rng(3).integers(50, 150, (100, 100)).astype(np.uint8)
    out = render_in_style(film, style(percentiles=(20.0, 120.0, 240.0)))
    assert np.percentile(out, [1, 50, 99]) == pytest.approx([20, 120, 240], abs=4)


def test_rendering_replaces_the_film_border_with_the_style_border():
    film = np.full((100, 100), 150, dtype=np.uint8)
    film[:, :10] = 0
    out = render_in_style(film, style(border=(0.1, 0.0, 0.0, 0.0)))
    assert border_widths(out) == (10, 0, 0, 0)


def test_jpeg_quality_is_read_from_the_file(tmp_path):
    path = tmp_path / "film.jpg"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (64, 64)).astype(np.uint8)).save(path, quality=75)
    assert jpeg_quality(path) == 75
    png = tmp_path / "film.png"
    Image.new("L", (8, 8)).save(png)
    assert jpeg_quality(png) is None


def test_rendering_re_encodes_at_the_style_quality():
    film = np.random.default_rng(5).integers(0, 255, (64, 64)).astype(np.uint8)
    out = render_in_style(film, style(jpeg_quality=20, percentiles=tuple(np.percentile(film, [1, 50, 99]))))
    buffer = io.BytesIO()
    Image.fromarray(film).save(buffer, format="JPEG", quality=20)
    expected = np.asarray(Image.open(buffer))
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 6
    assert np.abs(out.astype(int) - film.astype(int)).mean() > 10


@pytest.fixture(scope="module")
def tiny_predictor():
    from ml.engine import build_model

    model = build_model("vgg16", image_size=32, weights=None)
    record = {"preprocessing": PreprocessingSpec.for_backbone("vgg16", 32).to_dict(), "class_names": ["covid", "normal"],
              "positive_class": "covid", "threshold": 0.5, "metrics": {"n": 10, "calibration": {"ece": 0.1}}}
    return Predictor(model, record)


def test_full_report_on_a_tiny_model_gives_every_part_with_its_n(tiny_predictor):
    rng = np.random.default_rng(6)
    labels = ["covid", "normal"] * 4 + ["normal"] * 2
    sources = ["both"] * 8 + ["normals only"] * 2
    films = [thorax(96, rng) for _ in labels]
    report = shortcut_report(tiny_predictor, films, labels, sources, gradcam_limit=3, n_boot=20)
    per_source = report["occlusion"]["per_source"]
    assert per_source["both"]["lungs_blanked"]["value"] is not None
    assert per_source["normals only"]["lungs_blanked"]["value"] is None
    assert report["masks"]["n"] == 10 and set(report["masks"]["fallback_by_source"]) == {"both", "normals only"}
    heat = report["heat_outside_lungs"]
    assert heat["n_gradcam"] == 3 and (heat["n"] == 0 or 0.0 <= heat["mean_share_outside"] <= 1.0)
    assert report["calibration"]["per_source"]["normals only"]["n"] == 2
    assert report["calibration"]["internal_test"]["ece"] == 0.1
    assert report["counterfactual"]["flip_rate"]["n"] == 4  # the 4 covid films in the normals-only style
