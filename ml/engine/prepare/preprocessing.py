"""The one preprocessing path from a decoded X-ray to the model's input tensor.

Every image arrives as a 2-D uint8 grayscale array (`ml.engine.decode.images`). `prepare_batch` turns a
list of them into the float32 batch the model takes, in two stages that the training pipeline
also uses, in the same order, with augmentation (training only) slotted between them:

1. `resize_images`: each film harmonised as the spec says (`harmonise`: crop, detail level,
   intensity; nothing by default), then bilinear, antialiased resizing (Pillow, equal to `tf.image.resize` with
   antialias, without TensorFlow) stretches each image to the square input size and rounds back
   to uint8. Stretching, not padding: padding would give the
   non-square films (mostly from one source) black borders the others lack, a shortcut a model
   could learn. Rounding to uint8 lets the training pipeline keep decoded images compactly in
   memory and still feed the model exactly what inference feeds it.
2. `to_model_input`: replicate the grey channel to RGB (the ImageNet backbones take 3 channels)
   and apply the backbone's own `keras.applications.<module>.preprocess_input`.

The `PreprocessingSpec` holding these choices is stored in every model's record, and the
predictor rebuilds its preprocessing from that record, never from defaults.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..model.backbones import get_backbone, resolve_image_size
from .harmonise import CROPS, INTENSITIES, harmonise

GRAYSCALE_TO_RGB = "grayscale-replicated-to-rgb"
SPEC_VERSION = 1


@dataclass(frozen=True)
class PreprocessingSpec:
    backbone: str = "xception"
    image_size: int = 299
    colour: str = GRAYSCALE_TO_RGB
    normalisation: str = "xception"  # keras.applications.<module of this backbone>.preprocess_input
    resize_method: str = "bilinear"
    antialias: bool = True
    aspect: str = "stretch"
    resized_dtype: str = "uint8"
    # Harmonisation before resizing (ml.engine.prepare.harmonise; issue 7). The defaults change nothing,
    # so records written before these fields existed load with the preprocessing they were trained with.
    crop: str = "none"  # "none" | "body" | "lungs"
    detail_size: int | None = None  # longer side brought down to this before resizing
    intensity: str = "none"  # "none" | "equalize" | "clahe" | "standardize"
    version: int = SPEC_VERSION

    @classmethod
    def for_backbone(cls, backbone: str = "xception", image_size: int | None = None, **harmonisation) -> PreprocessingSpec:
        spec = get_backbone(backbone)
        made = cls(backbone=spec.name, image_size=resolve_image_size(spec.name, image_size), normalisation=spec.name, **harmonisation)
        made.validate()
        return made

    @property
    def harmonises(self) -> bool:
        return self.crop != "none" or bool(self.detail_size) or self.intensity != "none"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessingSpec:
        known = {field.name for field in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown preprocessing fields {sorted(unknown)}: this model needs a newer engine.")
        spec = cls(**data)
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.version != SPEC_VERSION:
            raise ValueError(f"Preprocessing spec version {self.version} is not supported (this engine knows {SPEC_VERSION}).")
        if self.colour != GRAYSCALE_TO_RGB:
            raise ValueError(f"Unsupported colour handling {self.colour!r}.")
        if self.aspect != "stretch" or self.resized_dtype != "uint8":
            raise ValueError("Unsupported resize settings in the preprocessing spec.")
        if self.crop not in CROPS or self.intensity not in INTENSITIES:
            raise ValueError(f"Unsupported harmonisation: crop {self.crop!r}, intensity {self.intensity!r}.")
        if self.detail_size is not None and self.detail_size < 8:
            raise ValueError(f"detail_size {self.detail_size} is too small.")
        get_backbone(self.normalisation)
        resolve_image_size(self.backbone, self.image_size)


def _check_image(image: np.ndarray, index: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(
            f"Image {index} must be a 2-D uint8 grayscale array (from ml.engine.decode.images); got {image.dtype} {image.shape}."
        )
    return image


def harmonise_image(image: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """The spec's harmonisation of one film (crop, detail level, intensity); the film itself when off."""
    if not spec.harmonises:
        return image
    return harmonise(image, crop=spec.crop, detail_size=spec.detail_size, intensity=spec.intensity)


def resize_images(images: list[np.ndarray], spec: PreprocessingSpec, *, harmonised: bool = False) -> np.ndarray:
    """Stage 1: uint8 (H, W) arrays of any sizes -> uint8 (N, S, S, 1). NumPy and Pillow only.
    Each film is first harmonised as the spec says (`harmonised=True`: the caller already did).

    Pillow's bilinear filter on a float32 ("F") image widens its triangle kernel when shrinking,
    which is what `tf.image.resize(method="bilinear", antialias=True)` does: the two agree within
    2e-3 grey levels before rounding (at most 0.2% of pixels one level apart after it), so models
    trained with the TF resize keep their inputs. Without TensorFlow here, the inference worker
    can run this very function without loading TensorFlow."""
    from PIL import Image

    if spec.resize_method != "bilinear" or not spec.antialias:
        raise ValueError("Only antialiased bilinear resizing is supported.")
    size = (spec.image_size, spec.image_size)
    out = np.empty((len(images), spec.image_size, spec.image_size, 1), dtype=np.uint8)
    for index, image in enumerate(images):
        image = _check_image(image, index)
        if not harmonised:
            image = harmonise_image(image, spec)
        # Pillow converts to float itself (the same values as NumPy's astype, 0.13 ms sooner at 1024 px).
        resized = Image.fromarray(image).convert("F").resize(size, Image.Resampling.BILINEAR)
        out[index, :, :, 0] = np.clip(np.round(np.asarray(resized)), 0, 255).astype(np.uint8)
    return out


def to_model_input(batch, spec: PreprocessingSpec):
    """Stage 2: (N, S, S, 1) grey values 0-255 (uint8 or float, numpy or tf) -> float32 (N, S, S, 3).

    Written in TF ops so the training tf.data pipeline can map it; numpy in, tf Tensor out.
    """
    import tensorflow as tf

    x = tf.cast(batch, tf.float32)
    x = tf.concat([x, x, x], axis=-1)
    return get_backbone(spec.normalisation).preprocess_input()(x)


def prepare_batch(images: list[np.ndarray], spec: PreprocessingSpec, augment=None) -> np.ndarray:
    """uint8 grayscale (H, W) arrays -> float32 (N, S, S, 3), what the model takes.

    `augment` (a Keras layer, training only) is applied between the two stages, where the training
    pipeline applies it; the predictor and evaluation never pass it.
    """
    if len(images) == 0:
        return np.zeros((0, spec.image_size, spec.image_size, 3), dtype=np.float32)
    batch = resize_images(images, spec).astype(np.float32)
    if augment is not None:
        batch = augment(batch, training=True)
    return np.asarray(to_model_input(batch, spec), dtype=np.float32)
