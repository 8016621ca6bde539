import keras
import numpy as np
import pytest

from ml.engine.backbones import BACKBONES
from ml.engine.model import backbone_of, build_model, compile_model, normalise_weights, set_trainable

SMALLEST = {"xception": 71, "inceptionv3": 75, "resnet50": 32, "vgg16": 32}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_each_backbone_builds_with_a_softmax_head_and_its_grad_cam_layer(name):
    model = build_model(name, num_classes=3, image_size=SMALLEST[name], weights=None, dropout=0.1)
    x = np.zeros((2, SMALLEST[name], SMALLEST[name], 3), np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (2, 3) and np.allclose(y.sum(axis=1), 1.0, atol=1e-5)
    base = backbone_of(model)
    assert len(base.get_layer(BACKBONES[name].last_conv_layer).output.shape) == 4


def test_flatten_head_and_refusals():
    model = build_model("vgg16", 2, 32, weights=None, pooling="flatten")
    assert isinstance(model.get_layer("pool"), keras.layers.Flatten)
    with pytest.raises(ValueError):
        build_model("vgg16", 2, 32, weights=None, pooling="max")
    with pytest.raises(ValueError):
        build_model("alexnet", 2, 32, weights=None)
    with pytest.raises(FileNotFoundError):
        build_model("vgg16", 2, 32, weights="/nonexistent/weights.h5")
    assert normalise_weights("none") is None and normalise_weights("ImageNet") == "imagenet" and normalise_weights(None) is None


def test_trainable_modes():
    model = build_model("xception", 2, 71, weights=None, trainable="head")
    base = backbone_of(model)
    assert not base.trainable and model.get_layer("logits").trainable
    head_only = len(model.trainable_weights)
    assert head_only == 2  # the Dense kernel and bias
    set_trainable(model, "top", fine_tune_layers=20)
    top = [layer for layer in base.layers if layer.trainable and layer.weights]
    assert top and all(base.layers.index(layer) >= len(base.layers) - 20 for layer in top)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in top)
    set_trainable(model, "all")
    assert all(layer.trainable for layer in base.layers)
    compile_model(model, 1e-4)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)


def test_weights_from_a_local_file(tmp_path):
    source = build_model("vgg16", 2, 32, weights=None)
    path = tmp_path / "vgg16_notop.weights.h5"
    backbone_of(source).save_weights(path)
    copy = build_model("vgg16", 2, 32, weights=str(path))
    for a, b in zip(backbone_of(source).weights, backbone_of(copy).weights):
        assert np.array_equal(a.numpy(), b.numpy())
