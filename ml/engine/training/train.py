"""Training: from a dataset folder to a saved, measured model.

    from ml.engine import TrainConfig, train
    result = train("data/cxr", "runs/x1", TrainConfig(epochs=10), on_epoch_end=print)
    result.artifact_path, result.sha256, result.record["metrics"]

Steps: split the data (data.discover_dataset), decode and resize once, train with the lowest
validation loss checkpointed and early stopping, optionally fine-tune the top of the backbone,
restore the best weights, choose the decision threshold on the VALIDATION split for the target
sensitivity, then measure once on the TEST split (never used for any choice), and save the
model with its record. With `held_out_sources`, the films of those sources are in no split and
are measured apart at the end: the record's "source_held_out".
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..data.pipeline import build_augmenter, class_weights, load_images, make_tf_dataset, one_hot
from ..data.splits import discover_dataset, held_out_counts
from ..judge.metrics import evaluate_predictions, headline, source_held_out_record
from ..judge.plots import save_evaluation_plots
from ..model.artifact import library_versions, save_artifact
from ..model.decision import default_positive_class, select_threshold
from ..model.network import build_model, compile_model, count_params, normalise_weights, set_trainable
from ..model.temperature import apply_temperature, fit_temperature
from ..prepare import defences
from ..prepare.preprocessing import PreprocessingSpec
from ..serve.predictor import Predictor
from .callbacks import Progress, Validation
from .config import TrainConfig

logger = logging.getLogger(__name__)


class TrainingCancelled(Exception):
    """should_stop() asked training to stop; nothing was saved."""


@dataclass
class TrainResult:
    artifact_path: Path
    record: dict
    sha256: str

    @property
    def metrics(self) -> dict:
        return self.record["metrics"]


def _fit(model, train_ds, *, first_epoch, last_epoch, class_weight, callbacks, progress):
    model.fit(train_ds, initial_epoch=first_epoch, epochs=last_epoch, class_weight=class_weight, shuffle=False,
              callbacks=[*callbacks, progress], verbose=0)
    if progress.cancelled:
        raise TrainingCancelled("Training was cancelled.")
    return len([h for h in progress.history if h["phase"] == progress.phase])


def _defence_inputs(samples, spec, config: TrainConfig, seed: int) -> dict:
    """make_tf_dataset's `extras` and `defend` for the training-only defences switched on (none: {})."""
    if not defences.active(config):
        return {}
    styles = None
    if config.counterfactual_augmentation:
        from ..prepare.acquisition import styles_from_samples

        styles = styles_from_samples(samples)
        logger.info("Counterfactual augmentation: styles of %s", {name: style.to_dict() for name, style in styles.items()})
    started = time.monotonic()
    variants, masks = defences.training_arrays(samples, spec, config, styles, seed)
    logger.info("Training defences prepared in %.1f s (variants %s, lung masks %s)", time.monotonic() - started,
                variants is not None, masks is not None)
    extras = {name: array for name, array in (("variant", variants), ("mask", masks)) if array is not None}
    return {"extras": extras, "defend": lambda batch: defences.defend_batch(batch, config, seed)}


def _write_splits(path: Path, dataset) -> None:
    """Which image went where (relative paths), beside the artifact: to audit or reproduce the split."""
    listing = {name: [s.relpath for s in dataset.split(name)] for name in ("train", "val", "test")}
    listing["held_out"] = [s.relpath for s in dataset.held_out]  # the held-out sources' films: in no split
    path.write_text(json.dumps(listing, indent=1))


def train(
    data_dir,
    output_dir,
    config: TrainConfig | None = None,
    on_epoch_end: Callable[[int, int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    config = config or TrainConfig()
    started = time.monotonic()
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    keras.utils.set_random_seed(seed)
    # A seed alone does not make CPU training repeatable: multi-threaded reductions add up in a
    # different order each run. Deterministic ops do, so the same data and seed give the same model.
    tf.config.experimental.enable_op_determinism()
    trainable = config.resolved_trainable()
    if normalise_weights(config.weights) is None and trainable != "all":
        logger.warning("Training a %r head on a randomly initialised, frozen backbone: expect weak results; use trainable='all'.", trainable)

    dataset = discover_dataset(data_dir, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                               seed=seed, manifest=config.manifest, held_out_sources=config.held_out_sources)
    class_names = dataset.class_names
    positive_class = config.positive_class or default_positive_class(class_names)
    if positive_class not in class_names:
        raise ValueError(f"Positive class {positive_class!r} is not one of the classes {class_names}.")
    spec = PreprocessingSpec.for_backbone(config.backbone, config.image_size, **config.harmonisation())
    counts = dataset.split_counts()
    logger.info("Dataset %s (%s%s): classes %s, split %s", data_dir, dataset.layout,
                ", grouped by patient" if dataset.grouped_by_patient else "", class_names, counts)
    if dataset.held_out:
        logger.info("Held out of every split: %s", held_out_counts(dataset.held_out, class_names))

    loaded = {}
    for split in ("train", "val", "test"):
        samples = dataset.split(split)
        loaded[split] = (load_images(samples, spec),
                         one_hot([class_names.index(s.label) for s in samples], len(class_names)))
    logger.info("Decoded and resized %d images to %d px in %.1f s", sum(len(v[0]) for v in loaded.values()),
                spec.image_size, time.monotonic() - started)
    if should_stop is not None and should_stop():
        raise TrainingCancelled("Training was cancelled before it started.")

    augmenter = build_augmenter(config.augmentation, seed=seed)
    train_ds = make_tf_dataset(*loaded["train"], spec, batch_size=config.batch_size, training=True,
                                           augmenter=augmenter, seed=seed, **_defence_inputs(dataset.train, spec, config, seed))
    val_ds = make_tf_dataset(*loaded["val"], spec, batch_size=config.batch_size)
    train_labels = loaded["train"][1].argmax(axis=1).tolist()
    weights_by_class = class_weights(train_labels, len(class_names))

    model = build_model(config.backbone, len(class_names), spec.image_size, weights=config.weights, pooling=config.pooling,
                        dropout=config.dropout, trainable=trainable, fine_tune_layers=config.fine_tune_layers,
                        bn_momentum=config.resolved_bn_momentum())
    compile_model(model, config.learning_rate)
    fine_tune = config.fine_tune_epochs if trainable == "head" else 0
    total_epochs = config.epochs + fine_tune
    checkpoint_dir = output_dir / "checkpoints"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    best_path = checkpoint_dir / "best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(best_path, monitor="val_loss", mode="min", save_best_only=True, save_weights_only=True)
    history: list[dict] = []

    calibration_ds = None
    if trainable == "all":
        calibration_ds = make_tf_dataset(*loaded["train"], spec, batch_size=config.batch_size, training=True, seed=seed + 1)

    def phase_callbacks():
        callbacks = [Validation(val_ds, calibration_ds, config.bn_recalibration_batches), checkpoint]
        if config.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=config.early_stopping_patience))
        if config.reduce_lr_patience:
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=config.reduce_lr_patience, min_lr=1e-6))
        return callbacks

    logger.info("Training %s (%s, weights %s, trainable %s, %s params) for up to %d epochs",
                config.backbone, spec.image_size, config.weights, trainable, count_params(model), total_epochs)
    try:
        phase_one = _fit(model, train_ds, first_epoch=0, last_epoch=config.epochs, class_weight=weights_by_class,
                         callbacks=phase_callbacks(), progress=Progress(on_epoch_end, should_stop, total_epochs, history, "train"))
        if fine_tune:
            model.load_weights(best_path)
            set_trainable(model, "top", fine_tune_layers=config.fine_tune_layers)
            compile_model(model, config.fine_tune_learning_rate)
            logger.info("Fine-tuning the top %d backbone layers at lr %g", config.fine_tune_layers, config.fine_tune_learning_rate)
            _fit(model, train_ds, first_epoch=phase_one, last_epoch=phase_one + fine_tune, class_weight=weights_by_class,
                 callbacks=phase_callbacks(), progress=Progress(on_epoch_end, should_stop, total_epochs, history, "fine-tune"))
    except TrainingCancelled:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        raise
    if best_path.exists():
        model.load_weights(best_path)
    best = min(history, key=lambda h: h.get("val_loss", np.inf))

    # Threshold from validation; test measured once, afterwards.
    record = {
        "name": config.artifact_name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": spec.backbone,
        "input_size": spec.image_size,
        "preprocessing": spec.to_dict(),
        "class_names": list(class_names),
        "positive_class": positive_class,
        "threshold": 0.5,
        "temperature": 1.0,
    }
    predictor = Predictor(model, record)
    val_probabilities = predictor.predict_resized(loaded["val"][0])
    val_labels = [s.label for s in dataset.val]
    if config.temperature_scaling:
        # Fitted on validation before the threshold, which is then chosen on calibrated probabilities.
        predictor.temperature = record["temperature"] = fit_temperature(val_probabilities, [class_names.index(l) for l in val_labels])
        val_probabilities = apply_temperature(val_probabilities, predictor.temperature)
        logger.info("Temperature %.3f fitted on validation", predictor.temperature)
    positive = class_names.index(positive_class)
    choice = select_threshold(np.array([label == positive_class for label in val_labels]), val_probabilities[:, positive],
                              config.target_sensitivity)
    threshold = choice["threshold"]
    val_metrics = evaluate_predictions(val_probabilities, val_labels, class_names, positive_class, threshold,
                                       origins=[s.origin for s in dataset.val], n_boot=config.n_boot, seed=seed)
    val_metrics["split"] = "validation"
    if dataset.test:
        test_probabilities = predictor.predict_resized(loaded["test"][0])
        metrics = evaluate_predictions(test_probabilities, [s.label for s in dataset.test], class_names, positive_class, threshold,
                                       origins=[s.origin for s in dataset.test], n_boot=config.n_boot, seed=seed)
        metrics["split"] = "test"
        evaluation_set = f"test split of {data_dir} ({dataset.layout}{', grouped by patient' if dataset.grouped_by_patient else ''})"
    else:
        metrics = dict(val_metrics, split="validation (no test split; the threshold was chosen here, so optimistic)")
        evaluation_set = f"validation split of {data_dir}"
    plots = save_evaluation_plots(metrics, output_dir, prefix="test" if dataset.test else "validation")
    metrics["plots"] = {name: path.name for name, path in plots.items()}
    logger.info("Threshold %.4f (validation sensitivity %.3f for target %.2f); %s: %s", threshold,
                choice["achieved_sensitivity"] or float("nan"), config.target_sensitivity, metrics["split"], headline(metrics))

    source_held_out = None
    if dataset.held_out:
        # Measured like the test split (same threshold, chosen on validation), on films of sources
        # that took no part in training, validation or the threshold.
        held_probabilities = predictor.predict_resized(load_images(dataset.held_out, spec))
        held_metrics = evaluate_predictions(held_probabilities, [s.label for s in dataset.held_out], class_names, positive_class,
                                            threshold, origins=[s.origin for s in dataset.held_out], n_boot=config.n_boot, seed=seed)
        source_held_out = source_held_out_record(held_metrics, dataset.held_out_sources, held_out_counts(dataset.held_out, class_names))
        logger.info("Source-held-out test (%s): %s. %s", ", ".join(dataset.held_out_sources), headline(source_held_out),
                    source_held_out["note"])

    dataset_record = dataset.describe()
    record.update({
        "threshold": threshold,
        "threshold_selection": {"split": "validation", "rule": "highest specificity with sensitivity >= target; threshold mid-gap below the lowest positive kept", **choice},
        "metrics": metrics,
        "validation_metrics": val_metrics,
        "evaluation_set": evaluation_set,
        **({"source_held_out": source_held_out} if source_held_out else {}),
        "training": {
            "config": config.to_dict(),
            "seed": seed,
            "trainable": trainable,
            "bn_momentum": config.resolved_bn_momentum(),
            "class_weights": weights_by_class,
            "epochs_run": len(history),
            "best_epoch": best["epoch"],
            "best_val_loss": best.get("val_loss"),
            "history": history,
            "seconds": round(time.monotonic() - started, 1),
            "parameters": count_params(model),
        },
        "defences": config.defences(),  # the issue-7 switches of this run, for the portal to show
        "dataset": dataset_record,
        "synthetic": dataset_record["synthetic"],
        "library_versions": library_versions(),
    })
    _write_splits(output_dir / f"{config.artifact_name}.splits.json", dataset)
    artifact_path, record = save_artifact(model, output_dir, record, name=config.artifact_name, save_h5=config.save_h5)
    if not config.keep_checkpoint:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    logger.info("Saved %s (sha256 %s) in %.0f s", artifact_path, record["sha256"], time.monotonic() - started)
    return TrainResult(artifact_path=artifact_path, record=record, sha256=record["sha256"])
