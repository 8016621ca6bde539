"""Inference with a saved model: probabilities, the thresholded label, and Grad-CAM.

    predictor = Predictor.load("model.keras", expected_sha256=version.sha256)
    results = predictor.predict([pixels, ...])   # uint8 (H, W) arrays from ml.engine.decode.images
    heatmap = predictor.gradcam(pixels)           # float32 (H, W) in [0, 1]
    png = predictor.gradcam_overlay_png(pixels, heatmap)

Preprocessing comes from the model's record (the spec it was trained with), through
`preprocessing.prepare_batch`, the function the training pipeline uses. A batch goes through the
model in one call of a compiled function (`tf.function` with a fixed input signature, so batches
of any size reuse one graph); nothing here augments.
"""
from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..model.artifact import load_artifact
from ..model.backbones import get_backbone
from ..model.decision import results
from ..model.network import HEAD_LAYERS, backbone_of
from ..model.temperature import apply_temperature
from ..prepare.preprocessing import PreprocessingSpec, prepare_batch, to_model_input


class Predictor:
    def __init__(self, model: keras.Model, record: dict, *, batch_size: int = 32):
        self.model = model
        self.record = record
        self.spec = PreprocessingSpec.from_dict(record["preprocessing"])
        self.class_names = list(record["class_names"])
        self.positive_class = record["positive_class"]
        self.threshold = float(record["threshold"])
        self.temperature = float(record.get("temperature", 1.0))  # fitted on validation; 1.0 = none
        self.batch_size = batch_size
        size = self.spec.image_size
        signature = [tf.TensorSpec([None, size, size, 3], tf.float32)]
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=signature)
        self._gradcam_model = None

    @classmethod
    def load(cls, artifact_path, expected_sha256: str | None = None, **kwargs) -> Predictor:
        model, record = load_artifact(Path(artifact_path), expected_sha256)
        return cls(model, record, **kwargs)

    # --- probabilities -----------------------------------------------------------------------

    def predict_proba(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, K) calibrated probabilities in class_names order; up to `batch_size` images per model call."""
        out = [self._forward(tf.constant(prepare_batch(images[i:i + self.batch_size], self.spec))).numpy()
               for i in range(0, len(images), self.batch_size)]
        return self._calibrated(out)

    def _calibrated(self, batches: list[np.ndarray]) -> np.ndarray:
        if not batches:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return apply_temperature(np.concatenate(batches), self.temperature)

    def predict_resized(self, resized: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Probabilities for images already passed through preprocessing.resize_images (uint8 (N,S,S,1)),
        as ml.engine.data.load_images returns them; the rest of prepare_batch is applied here."""
        step = batch_size or self.batch_size
        out = [self._forward(to_model_input(resized[i:i + step], self.spec)).numpy() for i in range(0, len(resized), step)]
        return self._calibrated(out)

    def results(self, probabilities: np.ndarray) -> list[dict]:
        return results(probabilities, self.class_names, self.positive_class, self.threshold)

    def predict(self, images: list[np.ndarray]) -> list[dict]:
        return self.results(self.predict_proba(images))

    # --- Grad-CAM ----------------------------------------------------------------------------

    def _build_gradcam_model(self):
        """A model from the classifier's input to (last conv activations, logits).

        The backbone is a nested Model, so its inner layers are not reachable from the outer
        model's graph. A sub-model of the backbone exposes the conv layer and the backbone
        output; the head layers are then re-applied to that output, reusing their weights."""
        base = backbone_of(self.model)
        conv_name = get_backbone(self.spec.backbone).last_conv_layer
        inner = keras.Model(base.input, [base.get_layer(conv_name).output, base.output])
        inputs = keras.Input(shape=self.model.input_shape[1:])
        conv, x = inner(inputs, training=False)
        for name in HEAD_LAYERS[:-1]:  # pool, dropout, logits: the class scores before softmax
            x = self.model.get_layer(name)(x, training=False)
        return keras.Model(inputs, [conv, x])

    def gradcam(self, image: np.ndarray, class_name: str | None = None) -> np.ndarray:
        """Grad-CAM heatmap, float32 (H, W) in [0, 1] at the image's own resolution.

        Explains `class_name`, by default the label the predictor gives this image. The score is
        the class logit minus the mean logit (softmax is unchanged by a shift of all logits, so
        only this part means anything; for two classes it is half the log-odds)."""
        if self._gradcam_model is None:
            self._gradcam_model = self._build_gradcam_model()
        x = tf.constant(prepare_batch([image], self.spec))
        if class_name is None:
            class_name = self.predict([image])[0]["label"]
        target = self.class_names.index(class_name)
        with tf.GradientTape() as tape:
            conv, logits = self._gradcam_model(x, training=False)
            score = logits[:, target] - tf.reduce_mean(logits, axis=1)
        grads = tape.gradient(score, conv)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))[0]
        cam = cam.numpy().astype(np.float32)
        peak = float(cam.max())
        cam = cam / peak if peak > 0 else np.zeros_like(cam)
        height, width = image.shape[:2]
        resized = tf.image.resize(cam[:, :, None], (height, width), method="bilinear").numpy()[:, :, 0]
        return np.clip(resized, 0.0, 1.0).astype(np.float32)

    @staticmethod
    def gradcam_overlay_png(image: np.ndarray, heatmap: np.ndarray, *, colormap: str = "jet", alpha: float = 0.5,
                            max_side: int | None = 1024) -> bytes:
        return gradcam_overlay_png(image, heatmap, colormap=colormap, alpha=alpha, max_side=max_side)


def gradcam_overlay_png(image: np.ndarray, heatmap: np.ndarray, *, colormap: str = "jet", alpha: float = 0.5,
                        max_side: int | None = 1024) -> bytes:
    """The heatmap in a matplotlib colormap over the grey X-ray, as PNG bytes.

    Colour is blended in proportion to the heat, so cold regions show the plain film. Images
    larger than `max_side` are scaled down (aspect kept) to keep the PNG small; None keeps them."""
    from matplotlib import colormaps
    from PIL import Image

    if image.shape[:2] != heatmap.shape[:2]:
        raise ValueError(f"Heatmap {heatmap.shape} does not match image {image.shape}.")
    grey = np.repeat(image.astype(np.float32)[:, :, None] / 255.0, 3, axis=2)
    heat = np.clip(heatmap.astype(np.float32), 0.0, 1.0)
    colour = colormaps[colormap](heat)[:, :, :3].astype(np.float32)
    weight = (alpha * heat)[:, :, None]
    blended = (1.0 - weight) * grey + weight * colour
    picture = Image.fromarray(np.round(blended * 255.0).astype(np.uint8))
    if max_side and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
