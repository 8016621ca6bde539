"""A run with every defence switched on: the switches are recorded, the temperature is fitted and
stored, and the predictor and the serving paths (Keras and OpenVINO) apply the same
harmonisation and temperature."""
import numpy as np
import pytest

from ml.engine import PreprocessingSpec, prepare_batch, resize_images
from ml.engine.data.synthetic import make_chest_image

SWITCHES = dict(crop="body", detail_size=80, intensity="equalize", jpeg_augmentation=True, outside_lung_blanking=0.5,
                edge_blanking=0.5, blur_noise=0.3, temperature_scaling=True)


@pytest.fixture(scope="module")
def defended(two_split_dataset, tmp_path_factory):
    from ml.engine import TrainConfig, train

    config = TrainConfig.demo(epochs=2, val_fraction=0.25, seed=3, **SWITCHES)
    return train(two_split_dataset, tmp_path_factory.mktemp("defended"), config)


@pytest.fixture(scope="module")
def films():
    rng = np.random.default_rng(8)
    return [np.pad(make_chest_image(rng, 90, opacities=i % 2 == 0), 12, constant_values=3) for i in range(6)]


def test_every_switch_is_in_the_record(defended):
    record = defended.record
    assert {name: record["defences"][name] for name in SWITCHES} == SWITCHES
    assert record["training"]["config"]["outside_lung_blanking"] == 0.5
    spec = PreprocessingSpec.from_dict(record["preprocessing"])
    assert (spec.crop, spec.detail_size, spec.intensity) == ("body", 80, "equalize")


def test_temperature_is_fitted_and_stored(defended):
    assert defended.record["temperature"] != 1.0
    assert 0.05 <= defended.record["temperature"] <= 20


def test_predictor_applies_the_harmonisation_and_the_temperature(defended, films):
    from ml.engine import Predictor, apply_temperature

    predictor = Predictor.load(defended.artifact_path, expected_sha256=defended.sha256)
    raw = predictor.model(prepare_batch(films, predictor.spec), training=False).numpy()
    assert np.allclose(predictor.predict_proba(films), apply_temperature(raw, defended.record["temperature"]), atol=1e-5)
    plain = PreprocessingSpec.for_backbone("xception", 71)
    assert not np.array_equal(resize_images(films, predictor.spec), resize_images(films, plain))


def test_keras_predictor_and_both_serving_paths_agree_after_calibration(defended, films, tmp_path):
    from ml.engine import Predictor, ServingPredictor, export_serving_model

    expected = Predictor.load(defended.artifact_path).predict(films)
    export = export_serving_model(defended.artifact_path, tmp_path / "export")
    assert export["classifier"]["temperature"] == defended.record["temperature"]
    for serving in (ServingPredictor.keras(defended.artifact_path), ServingPredictor.openvino(tmp_path / "export")):
        got = serving.predict_batch(films)
        for want, answer in zip(expected, got):
            assert answer["label"] == want["label"]
            assert abs(answer["positive_probability"] - want["positive_probability"]) < 1e-4
