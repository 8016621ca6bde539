"""The int8 serving export (NNCF post-training quantisation of the fp32 export): what it records, and
that it is served as int8 or not at all, so no prediction of an int8 model is labelled fp32."""
import numpy as np
import pytest

from ml.engine import ServingPredictor, export_serving_model, load_serving_predictor, quantise_int8, save_artifact
from ml.engine.data.synthetic import make_chest_image
from tests.ml.engine.serve.test_serving import RECORD, random_classifier


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    artifact, _ = save_artifact(random_classifier(2), folder / "model", RECORD)
    export_serving_model(artifact, folder / "fp32")
    rng = np.random.default_rng(5)
    films = [make_chest_image(rng, 90, opacities=i % 2 == 0) for i in range(12)]
    record = quantise_int8(folder / "fp32", folder / "int8", films, calibrated_on="12 generated films")
    return artifact, folder / "fp32", folder / "int8", record


def test_the_int8_export_records_its_precision_calibration_and_files(exports):
    _, fp32_dir, int8_dir, record = exports
    assert record["precision"] == "int8" and record["calibration"] == {"n_images": 12, "images": "12 generated films"}
    assert "nncf" in record["versions"] and set(record["files"]) == {"serving.xml", "serving.bin", "cam_weights.npy"}
    assert (int8_dir / "serving.bin").stat().st_size < (fp32_dir / "serving.bin").stat().st_size / 2, "int8 weights"
    assert (int8_dir / "cam_weights.npy").read_bytes() == (fp32_dir / "cam_weights.npy").read_bytes()


def test_an_int8_export_is_served_as_int8_and_never_labelled_fp32(exports):
    _, fp32_dir, int8_dir, _ = exports
    with pytest.raises(ValueError, match="This export is int8; it cannot be served as fp32"):
        ServingPredictor.openvino(int8_dir, precision="fp32")
    with pytest.raises(ValueError, match="This export is fp32; it cannot be served as int8"):
        ServingPredictor.openvino(fp32_dir, precision="int8")
    result = ServingPredictor.openvino(int8_dir, precision="int8").predict_batch([np.full((80, 60), 120, np.uint8)])[0]
    assert (result["runtime"], result["precision"]) == ("openvino", "int8") and result["heatmap"].shape == (80, 60)


def test_a_worker_given_an_accepted_int8_validation_loads_int8(exports):
    artifact, _, int8_dir, _ = exports
    validation = {"accepted": True, "runtime": "openvino", "precision": "int8", "reason": "accepted"}
    predictor = load_serving_predictor(artifact, export_dir=int8_dir, validation=validation)
    assert (predictor.runtime, predictor.precision, predictor.fallback_reason) == ("openvino", "int8", None)


def test_int8_is_made_from_an_fp32_export_only(exports, tmp_path):
    _, _, int8_dir, _ = exports
    with pytest.raises(ValueError, match="int8 is made from an fp32 export only"):
        quantise_int8(int8_dir, tmp_path / "again", [np.zeros((90, 90), np.uint8)])
