"""The ImageNet recipe (frozen Xception at 299 px, then the top layers fine-tuned) is one flag away:
`--preset imagenet`. This machine cannot download ImageNet weights, so the test writes the weights of
a small random backbone in the format Keras reads and passes that file, which the preset accepts in
place of "imagenet". Nothing is downloaded."""
import numpy as np
import pytest

from ml.engine import TrainConfig


def test_the_preset_is_the_classic_recipe_with_the_defences():
    config = TrainConfig.preset("imagenet")
    assert (config.backbone, config.image_size, config.weights, config.resolved_trainable()) == ("xception", 299, "imagenet", "head")
    assert config.fine_tune_epochs > 0 and config.fine_tune_learning_rate < config.learning_rate
    assert config.temperature_scaling and config.crop != "none"


@pytest.fixture(scope="module")
def imagenet_like_run(two_split_dataset, tmp_path_factory):
    import keras

    from ml.engine import train

    folder = tmp_path_factory.mktemp("imagenet")
    keras.utils.set_random_seed(1)
    backbone = keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3))
    weights = folder / "xception_notop.weights.h5"
    backbone.save_weights(weights)
    config = TrainConfig.preset("imagenet", weights=str(weights), image_size=71, epochs=1, fine_tune_epochs=1, batch_size=16,
                                val_fraction=0.25, n_boot=50, fine_tune_layers=10)
    result = train(two_split_dataset, folder / "run", config)
    return result, backbone


def test_frozen_then_fine_tuned_from_the_given_weights_file(imagenet_like_run):
    from ml.engine import Predictor
    from ml.engine.model.network import backbone_of

    result, source = imagenet_like_run
    training = result.record["training"]
    assert training["trainable"] == "head"
    assert [h["phase"] for h in training["history"]] == ["train", "fine-tune"]
    # The first conv layer stays frozen in both phases: it still holds the file's weights.
    trained = backbone_of(Predictor.load(result.artifact_path).model).get_layer("block1_conv1")
    assert np.array_equal(np.asarray(trained.kernel), np.asarray(source.get_layer("block1_conv1").kernel))
    assert result.record["training"]["config"]["weights"].endswith("xception_notop.weights.h5")
