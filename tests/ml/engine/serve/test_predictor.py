import io

import keras
import numpy as np
import pytest
from PIL import Image

from ml.engine import Predictor, PreprocessingSpec, prepare_batch
from ml.engine.data.synthetic import make_chest_image, signal_region
from ml.engine.model.network import backbone_of, build_model


@pytest.fixture(scope="module")
def predictions(predictor):
    rng = np.random.default_rng(3)
    images = [make_chest_image(rng, 100, opacities=i < 3) for i in range(6)] + [np.zeros((60, 90), np.uint8)]
    return images, predictor.predict(images)


def test_predict_returns_one_result_per_image(predictions):
    images, results = predictions
    assert len(results) == len(images)


def test_predict_returns_the_contract(predictor, predictions):
    for result in predictions[1]:
        assert set(result) == {"label", "probabilities", "positive_probability", "threshold"}
        assert list(result["probabilities"]) == predictor.class_names
        assert result["positive_probability"] == result["probabilities"][predictor.positive_class]
        assert result["threshold"] == predictor.threshold


def test_predicted_probabilities_sum_to_one(predictions):
    for result in predictions[1]:
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_applies_the_threshold(predictor, predictions):
    for result in predictions[1]:
        assert (result["label"] == "covid") == (result["positive_probability"] >= predictor.threshold)


def test_batches_of_any_size_share_one_compiled_graph(predictor):
    rng = np.random.default_rng(4)
    for n in (1, 3, 5):
        predictor.predict([make_chest_image(rng, 80) for _ in range(n)])
    assert predictor._forward.experimental_get_tracing_count() == 1


@pytest.fixture(scope="module")
def tall_image():
    return make_chest_image(np.random.default_rng(5), 160, opacities=True)[:, 20:140]  # 160 x 120


def test_gradcam_heatmap_has_the_image_resolution_and_values_in_0_1(predictor, tall_image):
    heatmap = predictor.gradcam(tall_image)
    assert heatmap.shape == tall_image.shape and heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0


def test_gradcam_overlay_is_an_rgb_png_of_the_image_size(predictor, tall_image):
    png = predictor.gradcam_overlay_png(tall_image, predictor.gradcam(tall_image))
    overlay = Image.open(io.BytesIO(png))
    assert overlay.format == "PNG" and overlay.mode == "RGB" and overlay.size == (120, 160)


def test_gradcam_overlay_of_a_large_image_is_scaled_down(predictor):
    big = np.zeros((1500, 1000), np.uint8)
    assert Image.open(io.BytesIO(predictor.gradcam_overlay_png(big, np.zeros(big.shape, np.float32)))).size == (683, 1024)


def test_gradcam_equals_the_class_activation_map_of_the_backbone_last_conv_layer():
    """With global average pooling and a dense head, Grad-CAM reduces to CAM (Zhou et al. 2016):
    the map is relu(sum_k w_k A_k) with w_k the class's dense weight, centred over classes, for
    channel k of the last conv layer. Computed here independently of Predictor.gradcam, through
    the nested backbone, on an untrained Xception with a random head."""
    keras.utils.set_random_seed(0)
    model = build_model("xception", 2, 71, weights=None, trainable="all")
    spec = PreprocessingSpec.for_backbone("xception", 71)
    record = {"preprocessing": spec.to_dict(), "class_names": ["covid", "normal"], "positive_class": "covid", "threshold": 0.5}
    predictor = Predictor(model, record)
    image = make_chest_image(np.random.default_rng(6), 90, opacities=True)[:, :80]
    base = backbone_of(model)
    conv = keras.Model(base.input, base.get_layer("block14_sepconv2_act").output)(prepare_batch([image], spec), training=False)
    conv = np.asarray(conv)[0]
    kernel = np.asarray(model.get_layer("logits").kernel)
    maxima = []
    for index, name in enumerate(record["class_names"]):
        weights = (kernel[:, index] - kernel.mean(axis=1)) / (conv.shape[0] * conv.shape[1])
        cam = np.maximum((conv * weights).sum(axis=-1), 0)
        cam = cam / cam.max() if cam.max() > 0 else cam
        expected = np.asarray(keras.ops.image.resize(cam[None, :, :, None], image.shape, interpolation="bilinear"))[0, :, :, 0]
        heatmap = predictor.gradcam(image, class_name=name)
        assert np.allclose(heatmap, np.clip(expected, 0, 1), atol=1e-4)
        maxima.append(heatmap.max())
    assert max(maxima) > 0.5  # a real map, not all zeros (bilinear resizing lowers the peak a little)


def test_gradcam_heat_follows_the_side_that_carries_the_signal(predictor):
    """The session model learnt opacities in a lower lung field, left or right at random. For a
    film with opacities on one side, Grad-CAM for 'covid' must be hotter in that lower lung field
    than in the mirror-image field on the other side, for either side.

    At 71 px Xception's last conv layer is 3x3, so the map is coarse and the contrast modest;
    at the 299 px design size the same code gives a 10x10 map."""
    rng = np.random.default_rng(11)
    size = 96
    ratios = {}
    for side, other in (("left", "right"), ("right", "left")):
        inside, mirror = signal_region(size, side=side), signal_region(size, side=other)
        ratios[side] = []
        for _ in range(8):
            heatmap = predictor.gradcam(make_chest_image(rng, size, opacities=True, side=side), class_name="covid")
            ratios[side].append(heatmap[inside].mean() / max(heatmap[mirror].mean(), 1e-6))
    summary = {side: np.round(values, 2).tolist() for side, values in ratios.items()}
    for side, values in ratios.items():
        assert np.mean(values) > 1.05, summary
        assert np.mean(np.array(values) > 1.0) >= 0.75, summary
