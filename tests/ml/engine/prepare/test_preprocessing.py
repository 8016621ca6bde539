import numpy as np
import pytest

from ml.engine import PreprocessingSpec, prepare_batch, resize_images

SPEC_71 = PreprocessingSpec.for_backbone("xception", 71)


def test_xception_spec_defaults():
    spec = PreprocessingSpec.for_backbone("xception")
    assert (spec.backbone, spec.image_size, spec.normalisation) == ("xception", 299, "xception")
    assert spec.colour == "grayscale-replicated-to-rgb"


def test_spec_size_follows_the_backbone():
    assert PreprocessingSpec.for_backbone("resnet50").image_size == 224


def test_spec_round_trips_through_a_dict():
    small = PreprocessingSpec.for_backbone("xception", 71)
    assert PreprocessingSpec.from_dict(small.to_dict()) == small


def test_size_below_the_backbone_minimum_is_refused():
    with pytest.raises(ValueError):
        PreprocessingSpec.for_backbone("xception", 64)  # below Keras' minimum for Xception


def test_spec_with_another_colour_is_refused():
    small = PreprocessingSpec.for_backbone("xception", 71)
    with pytest.raises(ValueError):
        PreprocessingSpec.from_dict({**small.to_dict(), "colour": "rgb"})


def test_prepare_batch_shape_and_type():
    batch = prepare_batch([np.zeros((50, 80), np.uint8), np.full((300, 200), 255, np.uint8)], SPEC_71)
    assert batch.shape == (2, 71, 71, 3) and batch.dtype == np.float32


def test_prepare_batch_applies_xception_normalisation():
    batch = prepare_batch([np.zeros((50, 80), np.uint8), np.full((300, 200), 255, np.uint8)], SPEC_71)
    assert np.allclose(batch[0], -1.0) and np.allclose(batch[1], 1.0)  # x / 127.5 - 1


def test_prepare_batch_replicates_grey_into_three_channels():
    image = (np.arange(120 * 90).reshape(120, 90) % 256).astype(np.uint8)
    batch = prepare_batch([image], SPEC_71)
    assert np.array_equal(batch[0][..., 0], batch[0][..., 1]) and np.array_equal(batch[0][..., 0], batch[0][..., 2])


def test_prepare_batch_of_no_images():
    assert prepare_batch([], SPEC_71).shape == (0, 71, 71, 3)


def test_caffe_style_backbones_use_their_own_preprocess_input():
    import keras

    spec = PreprocessingSpec.for_backbone("vgg16", 32)
    image = np.full((40, 40), 100, np.uint8)
    expected = keras.applications.vgg16.preprocess_input(np.full((1, 32, 32, 3), 100.0, np.float32))
    assert np.allclose(prepare_batch([image], spec), expected)


def test_float_images_are_refused():
    with pytest.raises(ValueError):
        prepare_batch([np.zeros((80, 80), np.float32)], SPEC_71)


def test_colour_images_are_refused():
    with pytest.raises(ValueError):
        prepare_batch([np.zeros((80, 80, 3), np.uint8)], SPEC_71)


def test_resize_keeps_uint8_and_stretches_to_square():
    spec = PreprocessingSpec.for_backbone("xception", 71)
    image = np.zeros((100, 300), np.uint8)
    image[:, :150] = 200
    out = resize_images([image], spec)
    assert out.shape == (1, 71, 71, 1) and out.dtype == np.uint8
    assert out[0, :, :30, 0].min() == 200 and out[0, :, 41:, 0].max() == 0  # left half bright, right half dark
