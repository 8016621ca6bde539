"""A model on disk and its record: sha256 checked before Keras reads the file (ml.engine.model.artifact)."""
import shutil

import numpy as np
import pytest

from ml.engine import ArtifactIntegrityError, Predictor, load_artifact, save_artifact


@pytest.fixture
def artifact_copy(trained, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for path in (trained.artifact_path, trained.artifact_path.with_suffix(".json")):
        shutil.copy(path, folder / path.name)
    return folder / trained.artifact_path.name


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_intact_copy_loads_with_its_expected_sha256(trained, artifact_copy):
    assert Predictor.load(artifact_copy, expected_sha256=trained.sha256).record["sha256"] == trained.sha256


def test_unexpected_sha256_is_refused(artifact_copy):
    with pytest.raises(ArtifactIntegrityError):
        Predictor.load(artifact_copy, expected_sha256="0" * 64)


def test_tampered_file_is_refused_by_the_predictor(artifact_copy):
    flip_a_byte(artifact_copy)
    with pytest.raises(ArtifactIntegrityError):
        Predictor.load(artifact_copy)


def test_tampered_file_is_refused_by_load_artifact(trained, artifact_copy):
    flip_a_byte(artifact_copy)
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(artifact_copy, expected_sha256=trained.sha256)


def test_model_without_its_record_is_refused(artifact_copy):
    artifact_copy.with_suffix(".json").unlink()
    with pytest.raises(ArtifactIntegrityError):
        Predictor.load(artifact_copy)


def test_h5_copy_on_request_predicts_as_the_model(tmp_path):
    from ml.engine import build_model

    model = build_model("vgg16", 2, 32, weights=None)
    record = {"preprocessing": {}, "class_names": ["a", "b"]}
    path, record = save_artifact(model, tmp_path, record, save_h5=True)
    assert (tmp_path / "model.h5").is_file() and record["h5_sha256"] != record["sha256"]
    loaded, _ = load_artifact(tmp_path / "model.h5")
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    assert np.allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)
