import keras
import numpy as np
import pytest

from ml.engine import BACKBONES
from ml.engine.model.network import backbone_of, build_model, compile_model, normalise_weights, set_trainable

SMALLEST = {"xception": 71, "inceptionv3": 75, "resnet50": 32, "vgg16": 32}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_each_backbone_builds_with_a_softmax_head_and_its_grad_cam_layer(name):
    model = build_model(name, num_classes=3, image_size=SMALLEST[name], weights=None, dropout=0.1)
    x = np.zeros((2, SMALLEST[name], SMALLEST[name], 3), np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (2, 3) and np.allclose(y.sum(axis=1), 1.0, atol=1e-5)
    base = backbone_of(model)
    assert len(base.get_layer(BACKBONES[name].last_conv_layer).output.shape) == 4


def test_flatten_head_on_request():
    model = build_model("vgg16", 2, 32, weights=None, pooling="flatten")
    assert isinstance(model.get_layer("pool"), keras.layers.Flatten)


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError):
        build_model("vgg16", 2, 32, weights=None, pooling="max")


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError):
        build_model("alexnet", 2, 32, weights=None)


def test_missing_weights_file_is_refused():
    with pytest.raises(FileNotFoundError):
        build_model("vgg16", 2, 32, weights="/nonexistent/weights.h5")


@pytest.mark.parametrize("given, expected", [("none", None), (None, None), ("ImageNet", "imagenet")])
def test_weights_names_are_normalised(given, expected):
    assert normalise_weights(given) == expected


@pytest.fixture
def xception():
    return build_model("xception", 2, 71, weights=None, trainable="head")


def test_head_mode_trains_only_the_dense_layer(xception):
    assert not backbone_of(xception).trainable and xception.get_layer("logits").trainable
    assert len(xception.trainable_weights) == 2  # the Dense kernel and bias


def test_top_mode_trains_the_top_layers_but_not_batch_normalisation(xception):
    base = backbone_of(xception)
    set_trainable(xception, "top", fine_tune_layers=20)
    top = [layer for layer in base.layers if layer.trainable and layer.weights]
    assert top and all(base.layers.index(layer) >= len(base.layers) - 20 for layer in top)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in top)


def test_all_mode_trains_every_backbone_layer(xception):
    set_trainable(xception, "all")
    assert all(layer.trainable for layer in backbone_of(xception).layers)


def test_compile_sets_the_learning_rate(xception):
    compile_model(xception, 1e-4)
    assert xception.optimizer.learning_rate.numpy() == pytest.approx(1e-4)


def test_weights_from_a_local_file(tmp_path):
    source = build_model("vgg16", 2, 32, weights=None)
    path = tmp_path / "vgg16_notop.weights.h5"
    backbone_of(source).save_weights(path)
    copy = build_model("vgg16", 2, 32, weights=str(path))
    for a, b in zip(backbone_of(source).weights, backbone_of(copy).weights):
        assert np.array_equal(a.numpy(), b.numpy())
