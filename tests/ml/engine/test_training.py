"""End to end on a tiny synthetic dataset: what train() records, progress, cancellation, and
that the decision threshold comes from the validation split, never from test."""
import json

import numpy as np
import pytest

from ml.engine.artifact import file_sha256
from ml.engine.decision import select_threshold
from ml.engine.images import load_image_file

from .conftest import TEST_PER_CLASS


def test_record_describes_the_model_and_its_data(trained, two_split_dataset):
    record = trained.record
    assert trained.artifact_path.suffix == ".keras" and trained.artifact_path.is_file()
    assert trained.sha256 == record["sha256"] == file_sha256(trained.artifact_path)
    assert json.loads(trained.artifact_path.with_suffix(".json").read_text())["sha256"] == trained.sha256
    assert record["backbone"] == "xception" and record["input_size"] == 71
    assert record["preprocessing"]["normalisation"] == "xception"
    assert record["preprocessing"]["colour"] == "grayscale-replicated-to-rgb"
    assert record["class_names"] == ["covid", "normal"] and record["positive_class"] == "covid"
    assert record["synthetic"] is True
    assert record["metrics"]["split"] == "test" and record["validation_metrics"]["split"] == "validation"
    assert record["metrics"]["n"] == 2 * TEST_PER_CLASS
    for name in ("roc_auc", "sensitivity", "specificity", "ppv", "npv", "accuracy"):
        assert set(record["metrics"][name]) >= {"value", "ci"}
    counts = record["dataset"]["split_counts"]
    assert counts["test"] == {"covid": TEST_PER_CLASS, "normal": TEST_PER_CLASS}
    assert counts["train"]["covid"] + counts["val"]["covid"] == 20
    assert len(record["dataset"]["fingerprint"]) == 64
    assert {"tensorflow", "keras", "numpy"} <= set(record["library_versions"])
    assert record["training"]["config"]["weights"] is None and record["training"]["trainable"] == "all"
    for plot in record["metrics"]["plots"].values():
        assert (trained.artifact_path.parent / plot).read_bytes().startswith(b"\x89PNG")


def test_progress_is_reported_every_epoch(trained):
    calls = trained.progress_calls
    assert [(epoch, total) for epoch, total, _ in calls] == [(i, 4) for i in range(1, len(calls) + 1)]
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"} <= set(calls[0][2])


def test_threshold_is_chosen_on_validation_not_test(trained, predictor, two_split_dataset):
    record = trained.record
    assert record["threshold_selection"]["split"] == "validation"
    splits = json.loads(trained.artifact_path.with_suffix(".splits.json").read_text())

    def chosen_on(split):
        relpaths = splits[split]
        probabilities = predictor.predict_proba([load_image_file(two_split_dataset / r) for r in relpaths])
        is_covid = np.array([r.split("/")[1] == "covid" for r in relpaths])
        return select_threshold(is_covid, probabilities[:, 0], record["threshold_selection"]["target_sensitivity"])["threshold"]

    on_validation, on_test = chosen_on("val"), chosen_on("test")
    assert record["threshold"] == pytest.approx(on_validation, rel=1e-4, abs=1e-6)
    # The test covid films are fainter: tuning on test would have given another threshold.
    assert on_test != pytest.approx(record["threshold"], rel=1e-3, abs=1e-5)
    assert record["validation_metrics"]["sensitivity"]["value"] >= 0.95


def test_should_stop_cancels_cleanly_after_an_epoch(tmp_path):
    from ml.engine.synthetic import make_synthetic_dataset
    from ml.engine.train import TrainConfig, TrainingCancelled, train

    data = make_synthetic_dataset(tmp_path / "data", n_per_class=8, image_size=40, seed=2)
    epochs = []
    config = TrainConfig(backbone="vgg16", image_size=32, weights=None, epochs=5, batch_size=8, n_boot=10)
    with pytest.raises(TrainingCancelled):
        train(data, tmp_path / "out", config, on_epoch_end=lambda e, n, m: epochs.append(e), should_stop=lambda: bool(epochs))
    assert epochs == [1]
    assert not list((tmp_path / "out").rglob("*.keras")) and not (tmp_path / "out" / "checkpoints").exists()
