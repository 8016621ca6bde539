"""Measuring a saved model on a folder of images: the model's own preprocessing, classes and
threshold, the statistics of `ml.engine.judge.metrics`, and optionally the plots of `ml.engine.judge.plots`."""
from __future__ import annotations

import numpy as np

from ..data.pipeline import load_images
from ..data.samples import evaluation_samples
from ..data.splits import content_fingerprint
from .metrics import evaluate_predictions
from .plots import save_evaluation_plots


def evaluate_artifact(
    artifact_path,
    data_dir,
    manifest=None,
    *,
    expected_sha256: str | None = None,
    plots_dir=None,
    n_boot: int = 1000,
    batch_size: int = 32,
    int8_export=None,
) -> dict:
    """Measure a saved model on a folder: `data_dir/test/<class>/` if it has a test split, else
    every image of `data_dir/<class>/`. Uses the model's own recorded preprocessing, classes and
    threshold, so two versions evaluated on the same folder are compared like for like. With
    `plots_dir`, the plots are written there and their file names kept under "plots".
    `int8_export`: a derived int8 version is measured as it serves, by its int8 OpenVINO export
    (the artifact still gives the classes, threshold and temperature)."""
    from ..serve.predictor import Predictor  # TensorFlow: only once a model is really measured

    predictor = Predictor.load(artifact_path, expected_sha256=expected_sha256)
    samples, described = evaluation_samples(data_dir, manifest=manifest, class_names=predictor.class_names)
    images = load_images(samples, predictor.spec)
    if int8_export is None:
        probabilities = predictor.predict_resized(images, batch_size=batch_size)
    else:
        from ..model.temperature import apply_temperature
        from ..serve.serving import ServingPredictor

        served = ServingPredictor.openvino(int8_export, precision="int8")
        raw = [served.forward(images[i:i + batch_size])[0] for i in range(0, len(images), batch_size)]
        probabilities = apply_temperature(np.concatenate(raw), predictor.temperature)
    metrics = evaluate_predictions(
        probabilities, [s.label for s in samples], predictor.class_names, predictor.positive_class, predictor.threshold,
        origins=[s.origin for s in samples], n_boot=n_boot,
    )
    metrics.update({
        "evaluation_set": described,
        "split": "given folder",
        "dataset_fingerprint": content_fingerprint(samples),
        "artifact_sha256": predictor.record.get("sha256"),
        "class_names": list(predictor.class_names),
        "measured_with": "openvino int8" if int8_export is not None else "keras",
    })
    if plots_dir is not None:
        plots = save_evaluation_plots(metrics, plots_dir, prefix="evaluation")
        metrics["plots"] = {name: path.name for name, path in plots.items()}
    return metrics
