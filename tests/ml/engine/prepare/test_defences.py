"""Training-only defences (ml.engine.prepare.defences) on small arrays made here."""
import numpy as np
import pytest

from ml.engine import TrainConfig
from ml.engine.prepare.acquisition import AcquisitionStyle
from ml.engine.prepare.defences import defend_batch, jpeg_reencode, make_variant, other_class_styles
from tests.ml.engine.prepare.test_lungs import thorax

STYLES = {
    "A": AcquisitionStyle("A", ("covid",), 10, 64, 40, (10.0, 150.0, 240.0), (0.1, 0.0, 0.0, 0.0)),
    "B": AcquisitionStyle("B", ("normal",), 10, 512, 90, (0.0, 120.0, 200.0), (0.0, 0.0, 0.0, 0.0)),
}


def test_other_class_styles_are_those_of_sources_without_the_label():
    assert [s.source for s in other_class_styles("covid", STYLES)] == ["B"]
    assert [s.source for s in other_class_styles("normal", STYLES)] == ["A"]


def test_counterfactual_variant_takes_the_other_class_style():
    film, _ = thorax((256, 256))
    config = TrainConfig(counterfactual_augmentation=True)
    normal_as_covid_source = make_variant(film, "normal", config, STYLES, np.random.default_rng(0))
    assert normal_as_covid_source.shape == film.shape
    covid_as_normal_source = make_variant(film, "covid", config, STYLES, np.random.default_rng(0))
    # grey levels mapped onto each style's percentiles: A's median (150) above B's (120)
    assert np.percentile(normal_as_covid_source, 50) > np.percentile(covid_as_normal_source, 50) + 15
    assert normal_as_covid_source[:20].mean() < 10  # style A's black strip along the top


def test_jpeg_augmentation_reencodes_at_a_random_quality():
    film, _ = thorax((128, 128))
    config = TrainConfig(jpeg_augmentation=True)
    variants = [make_variant(film, "covid", config, {}, np.random.default_rng(seed)) for seed in range(3)]
    assert all(v.shape == film.shape and not np.array_equal(v, film) for v in variants)
    assert not np.array_equal(variants[0], variants[1])
    assert np.abs(jpeg_reencode(film, 95).astype(int) - film).mean() < np.abs(jpeg_reencode(film, 10).astype(int) - film).mean()


def batch(n=8, size=32):
    images = np.full((n, size, size, 1), 100, np.uint8)
    masks = np.zeros((n, size, size, 1), np.uint8)
    masks[:, 8:24, 8:24] = 1
    return {"image": images, "mask": masks, "variant": np.full((n, size, size, 1), 200, np.uint8)}


def test_outside_lung_blanking_fills_only_outside_the_mask():
    b = batch()
    b.pop("variant")
    out = defend_batch(b, TrainConfig(outside_lung_blanking=1.0), seed=3).numpy()
    assert np.all(out[:, 8:24, 8:24] == 100)
    outside = out[:, :8]
    assert all(np.ptp(o) == 0 for o in outside) and np.ptp(outside[:, 0, 0, 0]) > 0  # one grey per film, differing


def test_edge_blanking_touches_only_the_edges():
    b = {"image": batch(64)["image"]}
    out = defend_batch(b, TrainConfig(edge_blanking=1.0), seed=4).numpy()
    assert np.all(out[:, 6:26, 6:26] == 100)  # strips are at most 15% of the side
    assert (out != 100).any(axis=(1, 2, 3)).mean() > 0.8


def test_variants_replace_about_half_the_films():
    out = defend_batch(batch(200), TrainConfig(counterfactual_augmentation=True), seed=5).numpy()
    share = (out[:, 0, 0, 0] == 200).mean()
    assert 0.35 < share < 0.65


def test_blur_and_noise_change_pixels():
    rng = np.random.default_rng(0)
    b = {"image": rng.integers(0, 255, (16, 32, 32, 1)).astype(np.uint8)}
    out = defend_batch(b, TrainConfig(blur_noise=1.0), seed=6).numpy()
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - b["image"]).mean() > 5


def test_defences_are_recorded_by_the_config():
    config = TrainConfig.preset("cpu-scratch", crop="lungs", outside_lung_blanking=0.5)
    assert config.defences()["crop"] == "lungs" and config.to_dict()["outside_lung_blanking"] == 0.5
    assert TrainConfig().defences() == {  # all off by default: the recipe before issue 7
        "crop": "none", "detail_size": None, "intensity": "none", "jpeg_augmentation": False,
        "counterfactual_augmentation": False, "outside_lung_blanking": 0.0, "edge_blanking": 0.0, "blur_noise": 0.0,
        "temperature_scaling": False}


def test_the_cpu_scratch_preset_trains_the_recipe_the_ablation_chose():
    # docs/engine.md: harmonisation kept internal AUC and relied least on acquisition shortcuts
    assert TrainConfig.preset("cpu-scratch").defences() == {
        "crop": "body", "detail_size": 224, "intensity": "equalize", "jpeg_augmentation": False,
        "counterfactual_augmentation": False, "outside_lung_blanking": 0.0, "edge_blanking": 0.0, "blur_noise": 0.0,
        "temperature_scaling": True}


@pytest.mark.parametrize("flag, name, value", [
    (["--crop", "body"], "crop", "body"), (["--detail-size", "224"], "detail_size", 224),
    (["--intensity", "clahe"], "intensity", "clahe"), (["--counterfactual-augmentation"], "counterfactual_augmentation", True),
    (["--outside-lung-blanking", "0.5"], "outside_lung_blanking", 0.5), (["--no-temperature-scaling"], "temperature_scaling", False),
])
def test_every_switch_is_a_command_line_flag(flag, name, value):
    from ml.engine import build_parser, config_from_args

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--preset", "cpu-scratch", *flag])
    assert getattr(config_from_args(args), name) == value
