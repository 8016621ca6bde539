"""The parts of a generalisation report that are measured with the model, once, inside an
evaluation job (ml.services.evaluation): the shortcut report on the evaluation folder's films,
the calibration curve and a few example heatmaps, drawn as files when recorded so that the report
page only reads them. TensorFlow is imported only when a model is really measured."""
import logging
from pathlib import Path

import numpy as np
from django.conf import settings

from ml import model_store

logger = logging.getLogger(__name__)

EXAMPLES_PER_CLASS = 2


def report_dir(version, fingerprint):
    return Path(settings.MODEL_STORE_DIR) / "reports" / f"v{version.pk}" / fingerprint[:16]


def _spread(samples, limit):
    """At most `limit` films, taken evenly across the folder so every source and class keeps a share."""
    if limit is None or len(samples) <= limit:
        return list(samples)
    index = np.unique(np.linspace(0, len(samples) - 1, limit).round().astype(int))
    return [samples[i] for i in index]


def measure_shortcuts(version, artifact_path, data_dir, metrics, fingerprint):
    """Add the shortcut report, its plots and example heatmaps to an evaluation's `metrics`."""
    from ml.engine import evaluation_samples, load_image_file, shortcut_report, source_name
    from ml.engine.judge.plots import save_calibration_png
    from ml.engine.serve.predictor import Predictor, gradcam_overlay_png

    predictor = Predictor.load(artifact_path, expected_sha256=version.sha256)
    samples, _described = evaluation_samples(data_dir, class_names=predictor.class_names)
    samples = _spread(samples, settings.ML_SHORTCUT_FILMS)
    images = [load_image_file(sample.path) for sample in samples]
    labels = [sample.label for sample in samples]
    report = shortcut_report(
        predictor, images, labels, [source_name(sample.origin) for sample in samples],
        gradcam_limit=settings.ML_SHORTCUT_GRADCAM, n_boot=300,
    )
    folder = report_dir(version, fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    if (metrics.get("calibration") or {}).get("curve"):
        files["calibration"] = save_calibration_png(metrics, folder / "calibration.png", "Calibration").name
    examples = []
    for label in predictor.class_names:
        for i in [i for i, each in enumerate(labels) if each == label][:EXAMPLES_PER_CLASS]:
            name = f"heatmap-{len(examples)}.png"
            (folder / name).write_bytes(gradcam_overlay_png(images[i], predictor.gradcam(images[i]), max_side=320))
            result = predictor.predict([images[i]])[0]
            examples.append({"file": name, "true": label, "said": result["label"],
                             "probability": float(result["positive_probability"]), "source": source_name(samples[i].origin)})
    files["examples"] = examples
    model_store.publish(folder)
    metrics["shortcuts"] = report
    metrics["report_files"] = files
    return metrics
