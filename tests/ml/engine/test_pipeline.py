"""Augmentation happens in the training input pipeline only: never in validation, test or the
predictor, and the saved model holds no augmentation layers."""
import numpy as np
import pytest

from ml.engine.data import Augmentation, build_augmenter, make_tf_dataset, one_hot
from ml.engine.preprocessing import PreprocessingSpec, prepare_batch, resize_images
from ml.engine.synthetic import make_chest_image

SPEC = PreprocessingSpec.for_backbone("xception", 71)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [make_chest_image(rng, 90, opacities=i % 2 == 0) for i in range(6)]


def batches(ds):
    return np.concatenate([x.numpy() for x, _ in ds])


def test_training_pipeline_augments_and_differs_every_epoch(images):
    resized = resize_images(images, SPEC)
    labels = one_hot([0, 1] * 3, 2)
    augmenter = build_augmenter(Augmentation(translation=0.1, rotation=0.05, zoom=0.1, brightness=0.2), seed=1)
    train_ds = make_tf_dataset(resized, labels, SPEC, batch_size=6, training=True, augmenter=augmenter, seed=0)
    first, second = batches(train_ds), batches(train_ds)
    clean = prepare_batch(images, SPEC)
    assert first.shape == clean.shape == (6, 71, 71, 3)
    # Shuffled, so compare as sets of images: no augmented image equals any clean one.
    for augmented in (first, second):
        assert min(np.abs(a - c).mean() for a in augmented for c in clean) > 1e-3
    assert not np.allclose(np.sort(first.ravel()), np.sort(second.ravel()))


def test_validation_pipeline_is_exactly_prepare_batch(images):
    resized = resize_images(images, SPEC)
    val_ds = make_tf_dataset(resized, one_hot([0, 1] * 3, 2), SPEC, batch_size=4)
    once, again = batches(val_ds), batches(val_ds)
    expected = prepare_batch(images, SPEC)
    assert np.array_equal(once, again)
    assert np.allclose(once, expected, atol=1e-6)


def test_augmenter_is_refused_outside_training(images):
    augmenter = build_augmenter(Augmentation(), seed=0)
    with pytest.raises(ValueError):
        make_tf_dataset(resize_images(images, SPEC), one_hot([0] * 6, 2), SPEC, training=False, augmenter=augmenter)
    assert build_augmenter(Augmentation(0, 0, 0, 0, False)) is None


def test_trained_model_has_no_augmentation_and_predicts_deterministically(predictor, images):
    import keras

    def all_layers(model):
        for layer in model.layers:
            yield layer
            if isinstance(layer, keras.Model):
                yield from all_layers(layer)

    assert not [layer.name for layer in all_layers(predictor.model) if type(layer).__name__.startswith("Random")]
    first, second = predictor.predict_proba(images), predictor.predict_proba(images)
    assert np.array_equal(first, second)
    # and the predictor's input is what prepare_batch makes, as validation's is
    direct = predictor.model(prepare_batch(images, predictor.spec), training=False).numpy()
    assert np.allclose(first, direct, atol=1e-6)
