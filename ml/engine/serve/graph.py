"""The serving graph: the Keras model with stage 2 of its preprocessing traced in, returning the
class probabilities and the feature map the head pools in one forward pass; and the head's CAM
weights that turn that feature map into Grad-CAM's heatmap. The OpenVINO export (`export`) and the
Keras fallback (`serving.ServingPredictor.keras`) both run this graph.

Why no gradient is needed: the head is pooling -> dropout -> one Dense -> softmax, linear from
the feature map A to the logits. The gradient of (logit_c - mean logit) with respect to A is the
constant dense kernel, so Grad-CAM's channel weight alpha_k,c is the kernel's column, centred
over classes and averaged over positions (`cam_weights`), computed once here. Any other head
(a second Dense, a non-linearity) makes the map inexact: `head_cam_weights` refuses it.
"""
from __future__ import annotations

import numpy as np

from ..model.network import backbone_of
from ..prepare.preprocessing import PreprocessingSpec


class ServingUnsupported(ValueError):
    """The model's head is not linear in the feature map: its CAM would not equal Grad-CAM."""


def head_cam_weights(model) -> np.ndarray:
    """Grad-CAM channel weights (K, C) of a pooling -> dropout -> Dense -> softmax head.

    GlobalAveragePooling: alpha = kernel centred over classes (the 1/(h*w) scale is removed by
    the normalisation). Flatten: the kernel is (h*w*K, C) and alpha is its mean over positions."""
    import keras

    base = backbone_of(model)
    head = model.layers[model.layers.index(base) + 1:]
    dense = [layer for layer in head if isinstance(layer, keras.layers.Dense)]
    allowed = (keras.layers.GlobalAveragePooling2D, keras.layers.Flatten, keras.layers.Dropout,
               keras.layers.Dense, keras.layers.Activation)
    others = [layer.name for layer in head if not isinstance(layer, allowed)]
    if len(dense) != 1 or others or dense[0].get_config()["activation"] != "linear":
        raise ServingUnsupported(
            f"The head after the backbone ({[layer.name for layer in head]}) is not one linear Dense layer over "
            "pooled features, so the class activation map would not equal Grad-CAM: serve this model with "
            "Predictor.gradcam instead.")
    kernel = np.asarray(dense[0].kernel, dtype=np.float64)
    channels = int(base.output.shape[-1])
    kernel = kernel.reshape(-1, channels, kernel.shape[-1]).mean(axis=0)  # (K, C); no-op for pooling
    return (kernel - kernel.mean(axis=1, keepdims=True)).astype(np.float32)


def serving_function(model, spec: PreprocessingSpec):
    """tf.function: uint8 (N, S, S, 1) -> {"probabilities": (N, C), "features": (N, h, w, K)}."""
    import keras
    import tensorflow as tf

    from ..prepare.preprocessing import to_model_input

    base = backbone_of(model)
    inner = keras.Model(base.input, base.output)
    head = model.layers[model.layers.index(base) + 1:]
    size = spec.image_size

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 1], tf.uint8, name="image")])
    def serve(image):
        features = inner(to_model_input(image, spec), training=False)
        x = features
        for layer in head:
            x = layer(x, training=False)
        return {"probabilities": tf.cast(x, tf.float32), "features": tf.cast(features, tf.float32)}

    return serve
