"""The tf.data input pipeline: decoded images in memory, training-only augmentation, batches.

Images are decoded once with `ml.engine.decode.images.load_image_file` (the decoder uploads use),
resized by `preprocessing.resize_images` and kept in memory as uint8 (N, S, S, 1); that array is
the pipeline's cache (1,900 images at 299 px take 170 MB). Pre-loading rather than a
`tf.py_function` per element keeps the Python decoder (PIL, pydicom) out of the tf.data graph
and out of every epoch. Each batch then goes through the augmentation layers (training pipeline
only) and `preprocessing.to_model_input`, with prefetch.

TensorFlow and Keras are imported inside the functions that need them, so importing this
module stays light.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ..decode.images import load_image_file
from ..prepare.preprocessing import PreprocessingSpec, resize_images
from .samples import Sample


def load_images(samples: list[Sample], spec: PreprocessingSpec, *, workers: int = 2, chunk: int = 64) -> np.ndarray:
    """Decode (threads: PIL releases the GIL) and resize, chunk by chunk so full-size decoded
    images are never all in memory at once. -> uint8 (N, S, S, 1)."""
    out = np.empty((len(samples), spec.image_size, spec.image_size, 1), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(samples), chunk):
            batch = samples[start:start + chunk]
            decoded = list(pool.map(lambda sample: load_image_file(sample.path), batch))
            out[start:start + len(batch)] = resize_images(decoded, spec)
    return out


@dataclass
class Augmentation:
    """Training-only augmentation; 0 (or False) switches a transform off.

    translation: fraction of height/width; rotation: fraction of a full turn (0.03 = about 11
    degrees); zoom: fraction; brightness: fraction of the 0-255 range. Horizontal flips are off by
    default: a mirrored chest film puts the heart on the right and mirrors the laterality markers,
    which real PA/AP films never show outside dextrocardia."""

    translation: float = 0.05
    rotation: float = 0.03
    zoom: float = 0.1
    brightness: float = 0.1
    flip: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def enabled(self) -> bool:
        return any((self.translation, self.rotation, self.zoom, self.brightness, self.flip))


def build_augmenter(augmentation: Augmentation, seed: int = 0):
    """A keras.Sequential of Keras' random preprocessing layers, acting on grey values 0-255."""
    import keras

    if not augmentation.enabled:
        return None
    layers = []
    if augmentation.translation:
        t = augmentation.translation
        layers.append(keras.layers.RandomTranslation(t, t, fill_mode="constant", fill_value=0.0, seed=seed + 1))
    if augmentation.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 2))
    if augmentation.rotation:
        layers.append(keras.layers.RandomRotation(augmentation.rotation, fill_mode="constant", fill_value=0.0, seed=seed + 3))
    if augmentation.zoom:
        layers.append(keras.layers.RandomZoom(augmentation.zoom, fill_mode="constant", fill_value=0.0, seed=seed + 4))
    if augmentation.brightness:
        layers.append(keras.layers.RandomBrightness(augmentation.brightness, value_range=(0.0, 255.0), seed=seed + 5))
    return keras.Sequential(layers, name="training_augmentation")


def one_hot(labels: list[int], num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def make_tf_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    spec: PreprocessingSpec,
    *,
    batch_size: int = 32,
    training: bool = False,
    augmenter=None,
    seed: int = 0,
    extras: dict | None = None,
    defend=None,
):
    """(uint8 (N,S,S,1), one-hot labels) -> batches of (float32 (B,S,S,3), labels).

    Only a training dataset shuffles and augments; validation and test datasets apply exactly
    `preprocessing.to_model_input`, as the predictor does. `defend` (training only,
    `defences.defend_batch`) maps each batch {"image", **extras} (arrays aligned with `images`,
    e.g. "variant", "mask") to grey values before the augmentation layers."""
    import tensorflow as tf

    from ..prepare.preprocessing import to_model_input

    if (augmenter is not None or defend is not None) and not training:
        raise ValueError("Augmentation belongs to the training pipeline only.")
    autotune = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices(({"image": images, **(extras or {})} if defend else images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if defend is not None:
        ds = ds.map(lambda x, y: (defend(x), y), num_parallel_calls=autotune)
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(tf.cast(x, tf.float32), training=True), y), num_parallel_calls=autotune)
    ds = ds.map(lambda x, y: (to_model_input(x, spec), y), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


def class_weights(labels: list[int], num_classes: int) -> dict[int, float] | None:
    """Balanced weights n / (k * n_c) when the classes are unbalanced, else None."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if counts.min() == counts.max():
        return None
    total = counts.sum()
    return {i: float(total / (num_classes * count)) if count else 0.0 for i, count in enumerate(counts)}
