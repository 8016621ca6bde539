"""The serving path: one forward pass for probability and heatmap, the OpenVINO export, its
validation against Keras, and a worker path that never loads TensorFlow.

The models are untrained Xceptions at 71 px (speed and numerics do not depend on training); the
dense head is scaled up so the probabilities spread over (0, 1) instead of sitting at 0.5."""
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.engine import ArtifactIntegrityError, Predictor, PreprocessingSpec, prepare_batch, save_artifact
from ml.engine.data.synthetic import make_chest_image
from ml.engine.model.network import BatchNormRecalibrator, build_model
from ml.engine.serve.export import export_serving_model, reduced_precision_check, validate_export
from ml.engine.serve.graph import ServingUnsupported, head_cam_weights
from ml.engine.serve.serving import ServingPredictor, bf16_supported, load_serving_predictor, threads_for
from tests.ml.engine.exports import corrupt_export

ROOT = Path(__file__).resolve().parents[4]
SPEC = PreprocessingSpec.for_backbone("xception", 71)
RECORD = {"backbone": "xception", "preprocessing": SPEC.to_dict(), "class_names": ["covid", "normal"],
          "positive_class": "covid", "threshold": 0.5}


def random_classifier(seed: int):
    """Untrained, with BatchNorm statistics measured on a few films (else every feature map is
    nearly the same) and the dense kernel scaled so the probabilities spread over (0, 1)."""
    keras.utils.set_random_seed(seed)
    model = build_model("xception", 2, 71, weights=None, trainable="all")
    rng = np.random.default_rng(seed)
    BatchNormRecalibrator(model)([prepare_batch([make_chest_image(rng, 90, opacities=i % 2 == 0) for i in range(16)], SPEC)])
    dense = model.get_layer("logits")
    dense.kernel.assign(np.asarray(dense.kernel) * 20.0)
    return model


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(21)
    return [make_chest_image(rng, 90, opacities=i % 2 == 0)[:, : 70 + i] for i in range(12)]


@pytest.fixture(scope="module")
def labels():
    return [1 - i % 2 for i in range(12)]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    path, record = save_artifact(random_classifier(0), folder / "model", RECORD)
    return path


@pytest.fixture(scope="module")
def export_dir(artifact):
    out = artifact.parent.parent / "export"
    export_serving_model(artifact, out)
    return out


@pytest.fixture(scope="module")
def keras_serving(artifact):
    return ServingPredictor.keras(artifact)


def test_one_pass_heatmap_equals_keras_gradcam(artifact, keras_serving, images):
    """CAM from the dense weights on the one-pass feature map vs the gradient-based Grad-CAM."""
    predictor = Predictor.load(artifact)
    for image, result in zip(images[:4], keras_serving.predict_batch(images[:4])):
        expected = predictor.gradcam(image, class_name=result["heatmap_class"])
        assert result["heatmap"].shape == image.shape
        assert np.abs(result["heatmap"] / 255.0 - expected).max() < 0.01


def test_heatmap_is_uint8_at_most_128_px_with_the_image_aspect(keras_serving):
    heatmap = keras_serving.predict_batch([np.full((1500, 1000), 90, np.uint8)])[0]["heatmap"]
    assert heatmap.dtype == np.uint8 and heatmap.shape == (128, 85)


def test_prediction_records_runtime_and_precision(keras_serving, images):
    result = keras_serving.predict_batch(images[:1])[0]
    assert (result["runtime"], result["precision"]) == ("keras", "fp32")
    assert set(result) == {"label", "probabilities", "positive_probability", "threshold", "heatmap",
                           "heatmap_class", "heatmaps", "runtime", "precision"}
    assert set(result["heatmaps"]) == {"covid", "normal"} and result["heatmaps"][result["label"]] is result["heatmap"]


def test_head_with_two_dense_layers_is_refused():
    base = keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3))
    inputs = keras.Input((71, 71, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base(inputs))
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    outputs = keras.layers.Activation("softmax")(keras.layers.Dense(2, name="logits")(x))
    with pytest.raises(ServingUnsupported, match="would not equal Grad-CAM"):
        head_cam_weights(keras.Model(inputs, outputs))


def test_fp32_export_agrees_with_keras_within_1e_4(export_dir, keras_serving, images):
    expected = np.array([r["positive_probability"] for r in keras_serving.predict_batch(images)])
    results = ServingPredictor.openvino(export_dir, precision="fp32").predict_batch(images)
    got = np.array([r["positive_probability"] for r in results])
    assert expected.std() > 0.05  # the probabilities spread: the comparison means something
    assert np.abs(got - expected).max() <= 1e-4


def test_validation_accepts_a_faithful_export(export_dir, artifact, images, labels):
    result = validate_export(export_dir, artifact, images, labels)
    assert result["accepted"] and result["runtime"] == "openvino" and result["checks"]["fp32"]["passed"]


def test_validation_tries_bf16_only_where_the_cpu_has_it(export_dir, artifact, images, labels):
    result = validate_export(export_dir, artifact, images, labels)
    assert ("bf16" in result["checks"]) == bf16_supported()


@pytest.fixture
def corrupted_export(export_dir, tmp_path):
    """A copy of the export with some weights tripled, its export.json updated to match (so the
    sha256 checks pass and only the comparison with Keras can catch it)."""
    import shutil

    copy = tmp_path / "corrupted"
    shutil.copytree(export_dir, copy)
    corrupt_export(copy)
    return copy


def test_a_corrupted_export_is_refused_with_the_reason(corrupted_export, artifact, images, labels):
    result = validate_export(corrupted_export, artifact, images, labels)
    assert not result["accepted"] and result["runtime"] == "keras"
    assert "differs from Keras" in result["reason"]


def test_an_export_of_another_model_is_refused(export_dir, tmp_path, images, labels):
    other, _ = save_artifact(random_classifier(1), tmp_path / "other", RECORD)
    result = validate_export(export_dir, other, images, labels)
    assert not result["accepted"] and "differs from Keras" in result["reason"]


def test_a_tampered_file_is_not_loaded(export_dir, tmp_path):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(export_dir, copy)
    with open(copy / "cam_weights.npy", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match="cam_weights.npy"):
        ServingPredictor.openvino(copy)


def test_bf16_is_refused_when_labels_flip():
    reference = np.array([[0.51, 0.49], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    candidate = np.array([[0.49, 0.51], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    check = reduced_precision_check(reference, candidate, [1, 0, 1, 0], positive=0, threshold=0.5, precision="bf16")
    assert not check["passed"] and "flip" in check["reason"]


def test_bf16_is_refused_without_labels_to_measure_the_auc():
    same = np.array([[0.6, 0.4], [0.2, 0.8]])
    check = reduced_precision_check(same, same, None, positive=0, threshold=0.5, precision="bf16")
    assert not check["passed"] and "AUC" in check["reason"]


def test_threads_share_the_cores_among_concurrent_processes():
    assert (threads_for(1, cores=8), threads_for(2, cores=8), threads_for(4, cores=2)) == (8, 4, 1)


WORKER = """
import sys, numpy as np
from ml.engine import ServingPredictor
predictor = ServingPredictor.openvino(sys.argv[1], precision="fp32", concurrency=2)
result = predictor.predict_batch([np.full((80, 60), 120, np.uint8)])[0]
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules), result["runtime"], result["heatmap"].shape)
"""


def test_the_openvino_path_never_imports_tensorflow(export_dir):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", WORKER, str(export_dir)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[] openvino (80, 60)"


def test_a_worker_given_a_refused_export_falls_back_to_keras_saying_why(corrupted_export, artifact, images, labels):
    validation = validate_export(corrupted_export, artifact, images, labels)
    predictor = load_serving_predictor(artifact, export_dir=corrupted_export, validation=validation)
    assert predictor.runtime == "keras" and "differs from Keras" in predictor.fallback_reason
    assert predictor.predict_batch(images[:1])[0]["runtime"] == "keras"


def test_a_worker_given_an_accepted_export_serves_with_openvino(export_dir, artifact, images, labels):
    validation = validate_export(export_dir, artifact, images, labels)
    predictor = load_serving_predictor(artifact, export_dir=export_dir, validation=validation)
    assert (predictor.runtime, predictor.precision, predictor.fallback_reason) == ("openvino", validation["precision"], None)
