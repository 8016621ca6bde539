"""End to end on a tiny synthetic dataset: what train() records, progress, cancellation, and
that the decision threshold comes from the validation split, never from test."""
import json

import numpy as np
import pytest

from ml.engine import file_sha256, load_image_file, select_threshold

from ..conftest import TEST_PER_CLASS


def test_artifact_sha256_is_the_file_sha256(trained):
    assert trained.artifact_path.suffix == ".keras" and trained.artifact_path.is_file()
    assert trained.sha256 == trained.record["sha256"] == file_sha256(trained.artifact_path)


def test_record_is_written_beside_the_model(trained):
    assert json.loads(trained.artifact_path.with_suffix(".json").read_text())["sha256"] == trained.sha256


def test_record_describes_the_model_input(trained):
    record = trained.record
    assert record["backbone"] == "xception" and record["input_size"] == 71
    assert record["preprocessing"]["normalisation"] == "xception"
    assert record["preprocessing"]["colour"] == "grayscale-replicated-to-rgb"


def test_record_names_the_classes_and_the_positive_class(trained):
    assert trained.record["class_names"] == ["covid", "normal"] and trained.record["positive_class"] == "covid"


def test_record_says_the_data_was_synthetic(trained):
    assert trained.record["synthetic"] is True


def test_record_measures_the_test_split_with_intervals(trained):
    metrics = trained.record["metrics"]
    assert metrics["split"] == "test" and metrics["n"] == 2 * TEST_PER_CLASS
    for name in ("roc_auc", "sensitivity", "specificity", "ppv", "npv", "accuracy"):
        assert set(metrics[name]) >= {"value", "ci"}


def test_record_keeps_the_validation_metrics_apart(trained):
    assert trained.record["validation_metrics"]["split"] == "validation"


def test_record_counts_each_split(trained):
    counts = trained.record["dataset"]["split_counts"]
    assert counts["test"] == {"covid": TEST_PER_CLASS, "normal": TEST_PER_CLASS}
    assert counts["train"]["covid"] + counts["val"]["covid"] == 20


def test_record_fingerprints_the_data(trained):
    assert len(trained.record["dataset"]["fingerprint"]) == 64


def test_record_lists_library_versions(trained):
    assert {"tensorflow", "keras", "numpy"} <= set(trained.record["library_versions"])


def test_record_keeps_the_training_config(trained):
    record = trained.record
    assert record["training"]["config"]["weights"] is None and record["training"]["trainable"] == "all"


def test_test_split_plots_are_written_beside_the_model(trained):
    plots = trained.record["metrics"]["plots"]
    assert set(plots) == {"roc", "calibration", "confusion_matrix"}
    for plot in plots.values():
        assert (trained.artifact_path.parent / plot).read_bytes().startswith(b"\x89PNG")


def test_progress_is_reported_every_epoch(trained):
    calls = trained.progress_calls
    assert [(epoch, total) for epoch, total, _ in calls] == [(i, 4) for i in range(1, len(calls) + 1)]


def test_progress_carries_training_and_validation_metrics(trained):
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"} <= set(trained.progress_calls[0][2])


@pytest.fixture(scope="module")
def threshold_chosen_on(trained, predictor, two_split_dataset):
    """The threshold select_threshold would choose on each split of the trained model's data."""
    splits = json.loads(trained.artifact_path.with_suffix(".splits.json").read_text())
    target = trained.record["threshold_selection"]["target_sensitivity"]

    def chosen_on(split):
        relpaths = splits[split]
        probabilities = predictor.predict_proba([load_image_file(two_split_dataset / r) for r in relpaths])
        is_covid = np.array([r.split("/")[1] == "covid" for r in relpaths])
        return select_threshold(is_covid, probabilities[:, 0], target)["threshold"]

    return {split: chosen_on(split) for split in ("val", "test")}


def test_threshold_is_chosen_on_validation(trained, threshold_chosen_on):
    assert trained.record["threshold_selection"]["split"] == "validation"
    assert trained.record["threshold"] == pytest.approx(threshold_chosen_on["val"], rel=1e-4, abs=1e-6)


def test_threshold_is_not_the_one_the_test_split_would_give(trained, threshold_chosen_on):
    # The test covid films are fainter: tuning on test would have given another threshold.
    assert threshold_chosen_on["test"] != pytest.approx(trained.record["threshold"], rel=1e-3, abs=1e-5)


def test_threshold_reaches_the_target_sensitivity_on_validation(trained):
    assert trained.record["validation_metrics"]["sensitivity"]["value"] >= 0.95


@pytest.fixture(scope="module")
def cancelled_run(tmp_path_factory):
    """A run asked to stop as soon as its first epoch has ended: (epochs reported, output folder)."""
    from ml.engine import TrainConfig, TrainingCancelled, make_synthetic_dataset, train

    folder = tmp_path_factory.mktemp("cancelled")
    data = make_synthetic_dataset(folder / "data", n_per_class=8, image_size=40, seed=2)
    epochs = []
    config = TrainConfig(backbone="vgg16", image_size=32, weights=None, epochs=5, batch_size=8, n_boot=10)
    with pytest.raises(TrainingCancelled):
        train(data, folder / "out", config, on_epoch_end=lambda e, n, m: epochs.append(e), should_stop=lambda: bool(epochs))
    return epochs, folder / "out"


def test_should_stop_cancels_after_the_epoch_it_was_asked_in(cancelled_run):
    epochs, _ = cancelled_run
    assert epochs == [1]


def test_cancelled_training_leaves_no_model_or_checkpoint(cancelled_run):
    _, out = cancelled_run
    assert not list(out.rglob("*.keras")) and not (out / "checkpoints").exists()
