import shutil

import numpy as np
import pytest

from ml.engine.artifact import ArtifactIntegrityError, load_artifact, save_artifact
from ml.engine.evaluate import evaluate_artifact
from ml.engine.predictor import Predictor


def copy_artifact(trained, folder):
    folder.mkdir()
    for path in (trained.artifact_path, trained.artifact_path.with_suffix(".json")):
        shutil.copy(path, folder / path.name)
    return folder / trained.artifact_path.name


def test_reloaded_model_reproduces_the_recorded_test_metrics(trained, two_split_dataset):
    """Save/load round trip: the record's test metrics were computed by the in-memory model at the
    end of training; the model loaded back from disk must give the same predictions."""
    metrics = evaluate_artifact(trained.artifact_path, two_split_dataset, expected_sha256=trained.sha256, n_boot=50)
    recorded = trained.record["metrics"]
    assert metrics["n"] == recorded["n"]
    assert metrics["confusion_matrix"] == recorded["confusion_matrix"]
    assert metrics["roc_auc"]["value"] == pytest.approx(recorded["roc_auc"]["value"], abs=1e-9)
    assert metrics["mean_positive_probability"] == pytest.approx(recorded["mean_positive_probability"], rel=1e-5)
    assert metrics["evaluation_set"].startswith("test/ of")


def test_tampered_or_unexpected_artifact_is_refused(trained, tmp_path):
    path = copy_artifact(trained, tmp_path / "copy")
    Predictor.load(path, expected_sha256=trained.sha256)  # the intact copy loads
    with pytest.raises(ArtifactIntegrityError):
        Predictor.load(path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError):
        Predictor.load(path)
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(path, expected_sha256=trained.sha256)
    path.with_suffix(".json").unlink()
    with pytest.raises(ArtifactIntegrityError):
        Predictor.load(path)


def test_h5_copy_on_request(tmp_path):
    from ml.engine.model import build_model

    model = build_model("vgg16", 2, 32, weights=None)
    record = {"preprocessing": {}, "class_names": ["a", "b"]}
    path, record = save_artifact(model, tmp_path, record, save_h5=True)
    assert (tmp_path / "model.h5").is_file() and record["h5_sha256"] != record["sha256"]
    loaded, _ = load_artifact(tmp_path / "model.h5")
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    assert np.allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)
