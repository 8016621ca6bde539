"""resize_images (stage 1 of the preprocessing) runs without TensorFlow, so the inference worker
uses the very function training uses; it must still give what tf.image.resize gave, so models
trained with the TF resize keep their inputs."""
import numpy as np
import pytest
import tensorflow as tf

from ml.engine import PreprocessingSpec, resize_images
from ml.engine.data.synthetic import make_chest_image


@pytest.mark.parametrize("shape,size", [((1024, 1024), 299), ((300, 200), 299), ((50, 80), 96), ((37, 41), 96)])
def test_resize_equals_tensorflow_antialiased_bilinear(shape, size):
    rng = np.random.default_rng(0)
    image = make_chest_image(rng, max(shape))[: shape[0], : shape[1]]
    spec = PreprocessingSpec.for_backbone("xception", size)
    expected = tf.image.resize(image[:, :, None].astype(np.float32), (size, size), method="bilinear", antialias=True)
    expected = np.clip(np.round(expected.numpy()), 0, 255).astype(np.int16)
    got = resize_images([image], spec)[0].astype(np.int16)
    assert np.abs(got - expected).max() <= 1  # rounding of values a hair from .5
    assert np.mean(got != expected) <= 0.005
