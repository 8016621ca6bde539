"""The transfer-learning classifier: an ImageNet backbone without its top, and a small head.

    input (S, S, 3), already preprocessed
      -> backbone (a nested keras Model, e.g. "xception"), include_top=False
      -> "pool": GlobalAveragePooling2D (or Flatten)
      -> "dropout"
      -> "logits": Dense(one unit per class)
      -> "probabilities": softmax

The logits are a separate layer so Grad-CAM can take gradients of the class score before the
softmax squashes them. Augmentation is NOT part of the model: it lives in the training input
pipeline, so a saved model cannot augment at inference whatever flag it is called with.

Which weights train:
- "head": backbone frozen, a feature extractor (phase one of the classic recipe; needs
  pretrained weights to make sense);
- "top": the top `fine_tune_layers` layers of the backbone also train (phase two, lower rate);
  BatchNormalization layers stay frozen, as Keras' transfer-learning guide recommends;
- "all": the whole backbone trains, which is the only sensible choice from random weights.
In "head" and "top" the backbone is called with training=False so its BatchNormalization layers
keep their pretrained statistics even once unfrozen; in "all" they learn their statistics.
"""
from __future__ import annotations

from pathlib import Path

import keras

from .backbones import get_backbone, resolve_image_size

TRAINABLE_MODES = ("head", "top", "all")
HEAD_LAYERS = ("pool", "dropout", "logits", "probabilities")


def normalise_weights(weights):
    """'imagenet' | None | 'none' | a weights file path -> what keras.applications accepts."""
    if weights is None:
        return None
    if isinstance(weights, Path):
        weights = str(weights)
    if weights.strip().lower() in ("", "none", "random"):
        return None
    if weights.strip().lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {weights} does not exist (use 'imagenet', None or a file path).")
    return str(path)


def build_model(
    backbone: str = "xception",
    num_classes: int = 2,
    image_size: int | None = None,
    weights="imagenet",
    pooling: str = "avg",
    dropout: float = 0.2,
    trainable: str = "head",
    fine_tune_layers: int = 30,
    bn_momentum: float | None = None,
) -> keras.Model:
    """Build (not compile) the classifier. `weights`: 'imagenet' (downloads once, needs internet),
    None/'none' (random), or the path of a weights file for the backbone without its top (e.g.
    Keras' xception_weights_tf_dim_ordering_tf_kernels_notop.h5)."""
    if num_classes < 2:
        raise ValueError("A classifier needs at least two classes.")
    if trainable not in TRAINABLE_MODES:
        raise ValueError(f"trainable must be one of {TRAINABLE_MODES}, not {trainable!r}.")
    spec = get_backbone(backbone)
    size = resolve_image_size(spec.name, image_size)
    base = spec.build(image_size=size, weights=normalise_weights(weights))
    if bn_momentum is not None:
        # From random weights, with few steps, the default momentum (0.99) leaves the moving
        # statistics near their initial values and inference-mode outputs meaningless.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)

    inputs = keras.Input(shape=(size, size, 3), name="image")
    features = base(inputs, training=None if trainable == "all" else False)
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    elif pooling == "flatten":
        x = keras.layers.Flatten(name="pool")(features)
    else:
        raise ValueError(f"pooling must be 'avg' or 'flatten', not {pooling!r}.")
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    model = keras.Model(inputs, outputs, name=f"{spec.name}_classifier")
    set_trainable(model, trainable, fine_tune_layers=fine_tune_layers)
    return model


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone sub-model (the one layer of the classifier that is itself a Model)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError("Expected exactly one nested backbone model in the classifier.")
    return nested[0]


def set_trainable(model: keras.Model, mode: str, *, fine_tune_layers: int = 30) -> None:
    """Freeze or unfreeze the backbone; the head always trains. Recompile afterwards."""
    base = backbone_of(model)
    if mode == "head":
        base.trainable = False
    elif mode == "all":
        base.trainable = True
        for layer in base.layers:
            layer.trainable = True
    elif mode == "top":
        base.trainable = True
        cut = max(0, len(base.layers) - int(fine_tune_layers))
        for index, layer in enumerate(base.layers):
            frozen = index < cut or isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = not frozen
    else:
        raise ValueError(f"trainable must be one of {TRAINABLE_MODES}, not {mode!r}.")


def compile_model(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam, categorical cross-entropy, accuracy and AUC.

    Keras' AUC here is computed over the one-hot matrix (both columns); for two classes it tracks
    the positive-class ROC AUC closely and serves for monitoring only. Reported AUCs come from
    ml.engine.judge.evaluate on the positive class."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model


def count_params(model: keras.Model) -> dict:
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    total = sum(int(keras.ops.size(w)) for w in model.weights)
    return {"trainable": trainable, "total": total}


def batchnorm_layers(model: keras.Model) -> list:
    return [layer for layer in backbone_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)]


class BatchNormRecalibrator:
    """Replace the BatchNormalization moving statistics by their average over a few batches of
    inputs, computed with the current weights ("precise BN").

    Training from random weights changes the weights faster than the moving averages follow, so
    the inference-mode model (moving statistics) can disagree completely with the training-mode
    one, and a validation loss measured with lagging statistics picks the wrong checkpoint. Each
    batch runs in training mode with momentum 0, so the moving statistics become that batch's;
    their mean over the batches is then written back. Weights are not changed. The traced
    forward function (momentum 0 baked in) is kept for the next call."""

    def __init__(self, model: keras.Model):
        import tensorflow as tf

        self.model = model
        self.layers = [layer for layer in batchnorm_layers(model) if layer.trainable]
        self._forward = tf.function(lambda x: model(x, training=True), reduce_retracing=True)

    def __call__(self, batches, max_batches: int = 16) -> int:
        import numpy as np

        if not self.layers:
            return 0
        momenta = [layer.momentum for layer in self.layers]
        sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in self.layers]
        count = 0
        try:
            for layer in self.layers:
                layer.momentum = 0.0
            for x in batches:
                if count >= max_batches:
                    break
                self._forward(x[0] if isinstance(x, tuple) else x)
                for total, layer in zip(sums, self.layers):
                    total[0] += np.asarray(layer.moving_mean)
                    total[1] += np.asarray(layer.moving_variance)
                count += 1
            for (mean, variance), layer in zip(sums, self.layers):
                if count:
                    layer.moving_mean.assign(mean / count)
                    layer.moving_variance.assign(variance / count)
        finally:
            for layer, momentum in zip(self.layers, momenta):
                layer.momentum = momentum
        return count
