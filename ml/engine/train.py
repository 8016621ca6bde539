"""Training: from a dataset folder to a saved, measured model.

    from ml.engine.train import TrainConfig, train
    result = train("data/cxr", "runs/x1", TrainConfig(epochs=10), on_epoch_end=print)
    result.artifact_path, result.sha256, result.record["metrics"]

Steps: split the data (data.discover_dataset), decode and resize once, train with the lowest
validation loss checkpointed and early stopping, optionally fine-tune the top of the backbone,
restore the best weights, choose the decision threshold on the VALIDATION split for the target
sensitivity, then measure once on the TEST split (never used for any choice), and save the
model with its record.
"""
from __future__ import annotations

import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf
import numpy as np

from . import data as data_module
from .artifact import library_versions, save_artifact
from .backbones import get_backbone, resolve_image_size
from .data import Augmentation
from .decision import default_positive_class, select_threshold
from .evaluate import evaluate_predictions, headline, save_plots
from .model import BatchNormRecalibrator, build_model, compile_model, count_params, normalise_weights, set_trainable
from .preprocessing import PreprocessingSpec

logger = logging.getLogger(__name__)


class TrainingCancelled(Exception):
    """should_stop() asked training to stop; nothing was saved."""


@dataclass
class TrainConfig:
    backbone: str = "xception"
    image_size: int | None = None  # None: the backbone's design size (299 for Xception)
    weights: str | None = "imagenet"  # "imagenet", None / "none", or a weights file path
    epochs: int = 25  # phase one
    batch_size: int = 32
    seed: int | None = 42  # None: a random seed, recorded
    learning_rate: float = 1e-3
    # "head": frozen backbone; "top": also the top fine_tune_layers; "all": everything.
    # "auto": "head" with pretrained weights, "all" from random weights.
    trainable: str = "auto"
    fine_tune_epochs: int = 0  # phase two after a "head" phase: unfreeze the top layers
    fine_tune_layers: int = 30
    fine_tune_learning_rate: float = 1e-5
    pooling: str = "avg"
    dropout: float = 0.2
    bn_momentum: float | None = None  # None: 0.9 when the backbone trains from random weights, else Keras' default
    augmentation: Augmentation = field(default_factory=Augmentation)
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 0  # >0: halve the learning rate after this many epochs without val loss improvement
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    target_sensitivity: float = 0.95
    positive_class: str | None = None  # None: "covid" if present, else the last class
    manifest: str | None = None  # None: details.csv / manifest.csv in the dataset folder if suitable
    save_h5: bool = False
    artifact_name: str = "model"
    n_boot: int = 1000
    keep_checkpoint: bool = False
    bn_recalibration_batches: int = 16  # when BatchNormalization trains: batches of train images for precise BN before each validation

    # --- presets --------------------------------------------------------------------------

    @classmethod
    def demo(cls, **overrides) -> TrainConfig:
        """The portal's demo model: Xception at its minimum 71 px from random weights on the
        synthetic images (~80), a few epochs; well under a minute on 2 CPU cores."""
        return cls.preset("demo", **overrides)

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.") from None
        config = replace(base, augmentation=replace(base.augmentation))
        return config.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> TrainConfig:
        if "augmentation" in overrides and isinstance(overrides["augmentation"], dict):
            overrides["augmentation"] = Augmentation(**overrides["augmentation"])
        return replace(self, **overrides)

    # --- resolved values ------------------------------------------------------------------

    def resolved_image_size(self) -> int:
        return resolve_image_size(self.backbone, self.image_size)

    def resolved_trainable(self) -> str:
        if self.trainable != "auto":
            return self.trainable
        return "all" if normalise_weights(self.weights) is None else "head"

    def resolved_bn_momentum(self) -> float | None:
        if self.bn_momentum is not None:
            return self.bn_momentum
        return 0.9 if normalise_weights(self.weights) is None and self.resolved_trainable() == "all" else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["augmentation"] = self.augmentation.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls().with_overrides(**{k: v for k, v in data.items() if k in known})


PRESETS: dict[str, TrainConfig] = {
    # Demo model for `make run` on ml.engine.synthetic images (40 per class): learns the signal in
    # about 6 epochs; ~75 s on 2 idle cores, a third of it TensorFlow tracing the training step.
    "demo": TrainConfig(
        backbone="xception", image_size=71, weights=None, trainable="all", epochs=6, batch_size=16, seed=7,
        learning_rate=1e-3, early_stopping_patience=6, augmentation=Augmentation(translation=0.03, rotation=0.0, zoom=0.0, brightness=0.05),
        val_fraction=0.2, test_fraction=0.2, target_sensitivity=0.95, n_boot=200, bn_recalibration_batches=4,
    ),
    # Real X-rays on CPU without ImageNet weights (what bench/train_cxr.py ran): whole Xception
    # from scratch at 128 px.
    "cpu-scratch": TrainConfig(
        backbone="xception", image_size=128, weights=None, trainable="all", epochs=12, batch_size=32, seed=42,
        learning_rate=1e-3, early_stopping_patience=4, reduce_lr_patience=2,
    ),
    # The classic recipe when ImageNet weights are available (GPU advised): frozen Xception at 299,
    # then the top 30 layers fine-tuned at a 100x lower rate.
    "imagenet-transfer": TrainConfig(
        backbone="xception", image_size=299, weights="imagenet", trainable="head", epochs=15, fine_tune_epochs=10,
        fine_tune_layers=30, learning_rate=1e-3, fine_tune_learning_rate=1e-5, early_stopping_patience=5,
    ),
}


@dataclass
class TrainResult:
    artifact_path: Path
    record: dict
    sha256: str

    @property
    def metrics(self) -> dict:
        return self.record["metrics"]


class _Validation(keras.callbacks.Callback):
    """Validation at the end of each epoch, after re-estimating BatchNormalization statistics
    when they are being trained (see model.BatchNormRecalibrator). It runs first among the
    callbacks and writes val_* into the shared logs, so checkpointing, early stopping and
    progress all see the validation loss of the model as inference will run it."""

    def __init__(self, val_ds, calibration_ds=None, calibration_batches=16):
        super().__init__()
        self.val_ds, self.calibration_ds, self.calibration_batches = val_ds, calibration_ds, calibration_batches
        self.recalibrate = None

    def on_epoch_end(self, epoch, logs=None):
        if self.calibration_ds is not None and self.calibration_batches:
            if self.recalibrate is None:
                self.recalibrate = BatchNormRecalibrator(self.model)
            self.recalibrate(self.calibration_ds, self.calibration_batches)
        results = self.model.evaluate(self.val_ds, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": float(value) for name, value in results.items()})


class _Progress(keras.callbacks.Callback):
    """Reports each epoch to the caller and stops cleanly (within a batch) when asked."""

    def __init__(self, on_epoch_end, should_stop, total_epochs, history, phase):
        super().__init__()
        self.on_epoch_end_fn, self.should_stop = on_epoch_end, should_stop
        self.total_epochs, self.history, self.phase = total_epochs, history, phase
        self.cancelled = False
        self._started = time.monotonic()

    def _check(self):
        if self.should_stop is not None and self.should_stop():
            self.cancelled = True
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        metrics = {name: float(value) for name, value in (logs or {}).items() if np.isscalar(value) or np.ndim(value) == 0}
        metrics["epoch_seconds"] = time.monotonic() - self._started
        self.history.append({"epoch": epoch + 1, "phase": self.phase, **metrics})
        logger.info("epoch %d/%d (%s): %s", epoch + 1, self.total_epochs, self.phase,
                    " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if self.on_epoch_end_fn is not None:
            self.on_epoch_end_fn(epoch + 1, self.total_epochs, metrics)
        self._check()


def _fit(model, train_ds, *, first_epoch, last_epoch, class_weight, callbacks, progress):
    model.fit(train_ds, initial_epoch=first_epoch, epochs=last_epoch, class_weight=class_weight, shuffle=False,
              callbacks=[*callbacks, progress], verbose=0)
    if progress.cancelled:
        raise TrainingCancelled("Training was cancelled.")
    return len([h for h in progress.history if h["phase"] == progress.phase])


def _write_splits(path: Path, dataset) -> None:
    """Which image went where (relative paths), beside the artifact: to audit or reproduce the split."""
    import json

    listing = {name: [s.relpath for s in dataset.split(name)] for name in ("train", "val", "test")}
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

    dataset = data_module.discover_dataset(data_dir, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                                           seed=seed, manifest=config.manifest)
    class_names = dataset.class_names
    positive_class = config.positive_class or default_positive_class(class_names)
    if positive_class not in class_names:
        raise ValueError(f"Positive class {positive_class!r} is not one of the classes {class_names}.")
    spec = PreprocessingSpec.for_backbone(config.backbone, config.image_size)
    counts = dataset.split_counts()
    logger.info("Dataset %s (%s%s): classes %s, split %s", data_dir, dataset.layout,
                ", grouped by patient" if dataset.grouped_by_patient else "", class_names, counts)

    loaded = {}
    for split in ("train", "val", "test"):
        samples = dataset.split(split)
        loaded[split] = (data_module.load_images(samples, spec),
                         data_module.one_hot([class_names.index(s.label) for s in samples], len(class_names)))
    logger.info("Decoded and resized %d images to %d px in %.1f s", sum(len(v[0]) for v in loaded.values()),
                spec.image_size, time.monotonic() - started)
    if should_stop is not None and should_stop():
        raise TrainingCancelled("Training was cancelled before it started.")

    augmenter = data_module.build_augmenter(config.augmentation, seed=seed)
    train_ds = data_module.make_tf_dataset(*loaded["train"], spec, batch_size=config.batch_size, training=True,
                                           augmenter=augmenter, seed=seed)
    val_ds = data_module.make_tf_dataset(*loaded["val"], spec, batch_size=config.batch_size)
    train_labels = loaded["train"][1].argmax(axis=1).tolist()
    weights_by_class = data_module.class_weights(train_labels, len(class_names))

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
        calibration_ds = data_module.make_tf_dataset(*loaded["train"], spec, batch_size=config.batch_size, training=True, seed=seed + 1)

    def phase_callbacks():
        callbacks = [_Validation(val_ds, calibration_ds, config.bn_recalibration_batches), checkpoint]
        if config.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=config.early_stopping_patience))
        if config.reduce_lr_patience:
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=config.reduce_lr_patience, min_lr=1e-6))
        return callbacks

    logger.info("Training %s (%s, weights %s, trainable %s, %s params) for up to %d epochs",
                config.backbone, spec.image_size, config.weights, trainable, count_params(model), total_epochs)
    try:
        phase_one = _fit(model, train_ds, first_epoch=0, last_epoch=config.epochs, class_weight=weights_by_class,
                         callbacks=phase_callbacks(), progress=_Progress(on_epoch_end, should_stop, total_epochs, history, "train"))
        if fine_tune:
            model.load_weights(best_path)
            set_trainable(model, "top", fine_tune_layers=config.fine_tune_layers)
            compile_model(model, config.fine_tune_learning_rate)
            logger.info("Fine-tuning the top %d backbone layers at lr %g", config.fine_tune_layers, config.fine_tune_learning_rate)
            _fit(model, train_ds, first_epoch=phase_one, last_epoch=phase_one + fine_tune, class_weight=weights_by_class,
                 callbacks=phase_callbacks(), progress=_Progress(on_epoch_end, should_stop, total_epochs, history, "fine-tune"))
    except TrainingCancelled:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        raise
    if best_path.exists():
        model.load_weights(best_path)
    best = min(history, key=lambda h: h.get("val_loss", np.inf))

    # Threshold from validation; test measured once, afterwards.
    from .predictor import Predictor

    record = {
        "name": config.artifact_name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": spec.backbone,
        "input_size": spec.image_size,
        "preprocessing": spec.to_dict(),
        "class_names": list(class_names),
        "positive_class": positive_class,
        "threshold": 0.5,
    }
    predictor = Predictor(model, record)
    val_probabilities = predictor.predict_resized(loaded["val"][0])
    val_labels = [s.label for s in dataset.val]
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
    metrics["plots"] = save_plots(metrics, output_dir, prefix="test" if dataset.test else "validation")
    logger.info("Threshold %.4f (validation sensitivity %.3f for target %.2f); %s: %s", threshold,
                choice["achieved_sensitivity"] or float("nan"), config.target_sensitivity, metrics["split"], headline(metrics))

    dataset_record = dataset.describe()
    record.update({
        "threshold": threshold,
        "threshold_selection": {"split": "validation", "rule": "highest specificity with sensitivity >= target; threshold mid-gap below the lowest positive kept", **choice},
        "metrics": metrics,
        "validation_metrics": val_metrics,
        "evaluation_set": evaluation_set,
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
