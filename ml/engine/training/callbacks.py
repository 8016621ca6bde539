"""The Keras callbacks of a training run: validation as inference runs it, and progress/cancel."""
from __future__ import annotations

import logging
import time

import keras
import numpy as np

from ..model.network import BatchNormRecalibrator

logger = logging.getLogger("ml.engine.training.train")


class Validation(keras.callbacks.Callback):
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


class Progress(keras.callbacks.Callback):
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
