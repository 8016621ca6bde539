"""The plots of one evaluation, drawn once into files (ml.engine.judge.plots)."""
import numpy as np
import pytest
from PIL import Image

from ml.engine import evaluate_predictions, save_evaluation_plots


def metrics_of(truth, p_covid):
    p_covid = np.asarray(p_covid)
    return evaluate_predictions(np.stack([p_covid, 1 - p_covid], 1), truth, ["covid", "normal"], "covid", 0.5, n_boot=50)


@pytest.fixture(scope="module")
def both_classes():
    return metrics_of(["covid"] * 6 + ["normal"] * 4, [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.6, 0.2, 0.1, 0.05])


def test_evaluation_plots_are_png_files_in_the_folder(both_classes, tmp_path):
    written = save_evaluation_plots(both_classes, tmp_path / "plots")
    assert set(written) == {"roc", "calibration", "confusion_matrix"}
    for path in written.values():
        assert path.parent == tmp_path / "plots"
        assert Image.open(path).format == "PNG"


def test_plot_file_names_carry_the_prefix(both_classes, tmp_path):
    written = save_evaluation_plots(both_classes, tmp_path, prefix="test")
    assert {path.name for path in written.values()} == {"test_roc.png", "test_calibration.png", "test_confusion.png"}


def test_one_class_evaluation_has_no_roc_plot(tmp_path):
    written = save_evaluation_plots(metrics_of(["covid"] * 4, [0.9, 0.7, 0.4, 0.2]), tmp_path)
    assert set(written) == {"calibration", "confusion_matrix"}
