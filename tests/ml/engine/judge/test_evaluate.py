"""Measuring a saved model on a folder (ml.engine.judge.evaluate.evaluate_artifact)."""
import pytest


@pytest.fixture(scope="module")
def reevaluated(trained, two_split_dataset, tmp_path_factory):
    from ml.engine import evaluate_artifact

    plots = tmp_path_factory.mktemp("evaluation-plots")
    metrics = evaluate_artifact(trained.artifact_path, two_split_dataset, expected_sha256=trained.sha256, n_boot=50, plots_dir=plots)
    return metrics, plots


def test_reloaded_model_reproduces_the_recorded_test_metrics(trained, reevaluated):
    """Save/load round trip: the record's test metrics were computed by the in-memory model at the
    end of training; the model loaded back from disk must give the same predictions."""
    metrics, _ = reevaluated
    recorded = trained.record["metrics"]
    assert metrics["n"] == recorded["n"]
    assert metrics["confusion_matrix"] == recorded["confusion_matrix"]
    assert metrics["roc_auc"]["value"] == pytest.approx(recorded["roc_auc"]["value"], abs=1e-9)
    assert metrics["mean_positive_probability"] == pytest.approx(recorded["mean_positive_probability"], rel=1e-5)


def test_a_split_folder_is_measured_on_its_test_split(reevaluated):
    metrics, _ = reevaluated
    assert metrics["evaluation_set"].startswith("test/ of")


def test_evaluation_plots_are_written_where_asked(reevaluated):
    metrics, plots = reevaluated
    assert set(metrics["plots"]) == {"roc", "calibration", "confusion_matrix"}
    assert all((plots / name).read_bytes().startswith(b"\x89PNG") for name in metrics["plots"].values())
