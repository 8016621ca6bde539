"""The ImageNet backbones the engine can put under its classification head.

One table says, per name, which `keras.applications` constructor builds it, the input size it was
designed for, the smallest input Keras accepts, its own `preprocess_input` and the last
convolutional layer Grad-CAM reads. Importing this module does not import TensorFlow; the
functions that need Keras import it when called.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    name: str
    module: str  # keras.applications.<module>
    constructor: str  # keras.applications.<constructor>
    default_size: int
    min_size: int
    last_conv_layer: str  # name of the layer inside the backbone model that Grad-CAM reads

    def build(self, *, image_size: int, weights):
        import keras

        return getattr(keras.applications, self.constructor)(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
        )

    def preprocess_input(self):
        """The backbone's own normalisation (`keras.applications.<module>.preprocess_input`)."""
        return importlib.import_module(f"keras.applications.{self.module}").preprocess_input


BACKBONES: dict[str, Backbone] = {
    "xception": Backbone("xception", "xception", "Xception", 299, 71, "block14_sepconv2_act"),
    "inceptionv3": Backbone("inceptionv3", "inception_v3", "InceptionV3", 299, 75, "mixed10"),
    "resnet50": Backbone("resnet50", "resnet50", "ResNet50", 224, 32, "conv5_block3_out"),
    "vgg16": Backbone("vgg16", "vgg16", "VGG16", 224, 32, "block5_conv3"),
}
DEFAULT_BACKBONE = "xception"


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.") from None


def resolve_image_size(backbone: str, image_size: int | None) -> int:
    """The backbone's design size when none is given; refuse sizes Keras cannot build."""
    spec = get_backbone(backbone)
    size = spec.default_size if image_size is None else int(image_size)
    if size < spec.min_size:
        raise ValueError(f"{spec.name} needs an input of at least {spec.min_size} pixels; {size} was given.")
    return size
