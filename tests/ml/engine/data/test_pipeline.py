"""The input pipeline (ml.engine.data.pipeline). Augmentation happens in the training pipeline only:
never in validation, test or the predictor, and the saved model holds no augmentation layers."""
import numpy as np
import pytest

from ml.engine import PreprocessingSpec, prepare_batch, resize_images
from ml.engine.data.pipeline import Augmentation, build_augmenter, class_weights, make_tf_dataset, one_hot
from ml.engine.data.synthetic import make_chest_image

SPEC = PreprocessingSpec.for_backbone("xception", 71)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [make_chest_image(rng, 90, opacities=i % 2 == 0) for i in range(6)]


def batches(ds):
    return np.concatenate([x.numpy() for x, _ in ds])


@pytest.fixture(scope="module")
def two_training_epochs(images):
    resized = resize_images(images, SPEC)
    labels = one_hot([0, 1] * 3, 2)
    augmenter = build_augmenter(Augmentation(translation=0.1, rotation=0.05, zoom=0.1, brightness=0.2), seed=1)
    train_ds = make_tf_dataset(resized, labels, SPEC, batch_size=6, training=True, augmenter=augmenter, seed=0)
    return batches(train_ds), batches(train_ds)


def test_training_pipeline_augments_every_image(images, two_training_epochs):
    clean = prepare_batch(images, SPEC)
    for augmented in two_training_epochs:
        assert augmented.shape == clean.shape == (6, 71, 71, 3)
        # Shuffled, so compare as sets of images: no augmented image equals any clean one.
        assert min(np.abs(a - c).mean() for a in augmented for c in clean) > 1e-3


def test_training_pipeline_differs_every_epoch(two_training_epochs):
    first, second = two_training_epochs
    assert not np.allclose(np.sort(first.ravel()), np.sort(second.ravel()))


def validation_dataset(images):
    return make_tf_dataset(resize_images(images, SPEC), one_hot([0, 1] * 3, 2), SPEC, batch_size=4)


def test_validation_pipeline_is_exactly_prepare_batch(images):
    assert np.allclose(batches(validation_dataset(images)), prepare_batch(images, SPEC), atol=1e-6)


def test_validation_pipeline_is_the_same_every_epoch(images):
    val_ds = validation_dataset(images)
    assert np.array_equal(batches(val_ds), batches(val_ds))


def test_augmenter_is_refused_outside_training(images):
    augmenter = build_augmenter(Augmentation(), seed=0)
    with pytest.raises(ValueError):
        make_tf_dataset(resize_images(images, SPEC), one_hot([0] * 6, 2), SPEC, training=False, augmenter=augmenter)


def test_augmentation_switched_off_builds_no_augmenter():
    assert build_augmenter(Augmentation(0, 0, 0, 0, False)) is None


def test_trained_model_holds_no_augmentation_layer(predictor):
    import keras

    def all_layers(model):
        for layer in model.layers:
            yield layer
            if isinstance(layer, keras.Model):
                yield from all_layers(layer)

    assert not [layer.name for layer in all_layers(predictor.model) if type(layer).__name__.startswith("Random")]


def test_predictor_is_deterministic(predictor, images):
    assert np.array_equal(predictor.predict_proba(images), predictor.predict_proba(images))


def test_predictor_input_is_what_prepare_batch_makes(predictor, images):
    """As the validation pipeline's is."""
    direct = predictor.model(prepare_batch(images, predictor.spec), training=False).numpy()
    assert np.allclose(predictor.predict_proba(images), direct, atol=1e-6)


def test_balanced_classes_get_no_weights():
    assert class_weights([0, 1, 0, 1], 2) is None


def test_unbalanced_classes_get_balanced_weights():
    assert class_weights([0, 0, 0, 1], 2) == pytest.approx({0: 4 / 6, 1: 2.0})
