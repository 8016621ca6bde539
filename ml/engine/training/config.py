"""What a training run is asked to do: `TrainConfig` and its named presets.

    from ml.engine import TrainConfig
    TrainConfig.preset("cpu-scratch", epochs=4)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..data.pipeline import Augmentation
from ..model.network import normalise_weights


@dataclass
class TrainConfig:
    backbone: str = "xception"
    image_size: int | None = None  # None: the backbone's design size (299 for Xception)
    weights: str | None = "imagenet"  # "imagenet", None / "none", or a weights file path
    epochs: int = 25  # phase one
    batch_size: int = 32
    seed: int | None = 42  # None: a random seed, recorded
    learning_rate: float = 1e-3
    # "head": frozen backbone; "top": also the top fine_tune_layers; "all": everything.
    # "auto": "head" with pretrained weights, "all" from random weights.
    trainable: str = "auto"
    fine_tune_epochs: int = 0  # phase two after a "head" phase: unfreeze the top layers
    fine_tune_layers: int = 30
    fine_tune_learning_rate: float = 1e-5
    pooling: str = "avg"
    dropout: float = 0.2
    bn_momentum: float | None = None  # None: 0.9 when the backbone trains from random weights, else Keras' default
    augmentation: Augmentation = field(default_factory=Augmentation)
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 0  # >0: halve the learning rate after this many epochs without val loss improvement
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    target_sensitivity: float = 0.95
    positive_class: str | None = None  # None: "covid" if present, else the last class
    manifest: str | None = None  # None: details.csv / manifest.csv in the dataset folder if suitable
    save_h5: bool = False
    artifact_name: str = "model"
    n_boot: int = 1000
    keep_checkpoint: bool = False
    bn_recalibration_batches: int = 16  # when BatchNormalization trains: batches of train images for precise BN before each validation
    # --- defences against acquisition shortcuts (issue 7; docs/engine.md has the ablation) -----
    # Every switch is off by default (the recipe before issue 7) and is kept in the record's
    # training config. Preprocessing ones go into the PreprocessingSpec and so apply at inference.
    crop: str = "none"  # "body": black strips and air off (crop to the body); "lungs": the lung fields' box
    detail_size: int | None = None  # resolution harmonisation: longer side brought down to this before resizing
    intensity: str = "none"  # "equalize" (histogram), "clahe", "standardize" (per image)
    jpeg_augmentation: bool = False  # training: a JPEG re-encoding at a random quality 30-95
    counterfactual_augmentation: bool = False  # training: each film also in another class's source style
    outside_lung_blanking: float = 0.0  # training: probability of blanking everything outside the lungs
    edge_blanking: float = 0.0  # training: probability of blanking random edge and corner strips
    blur_noise: float = 0.0  # training: probability of a blur, and of added noise
    temperature_scaling: bool = False  # fit a temperature on validation; stored and applied at inference
    # Source names (data.resolve_sources: a full name or its unambiguous start) whose films are kept
    # out of every split and measured apart after training: the record's "source_held_out".
    held_out_sources: tuple[str, ...] = ()

    def __post_init__(self):
        # A list from JSON or a form is kept as a tuple, so configs compare and hash alike.
        self.held_out_sources = tuple(self.held_out_sources or ())

    # --- presets --------------------------------------------------------------------------

    @classmethod
    def demo(cls, **overrides) -> TrainConfig:
        """The portal's demo model: Xception at its minimum 71 px from random weights on the
        synthetic images (~80), a few epochs; well under a minute on 2 CPU cores."""
        return cls.preset("demo", **overrides)

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.") from None
        config = replace(base, augmentation=replace(base.augmentation))
        return config.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> TrainConfig:
        if "augmentation" in overrides and isinstance(overrides["augmentation"], dict):
            overrides["augmentation"] = Augmentation(**overrides["augmentation"])
        return replace(self, **overrides)

    # --- resolved values ------------------------------------------------------------------

    def resolved_trainable(self) -> str:
        if self.trainable != "auto":
            return self.trainable
        return "all" if normalise_weights(self.weights) is None else "head"

    def resolved_bn_momentum(self) -> float | None:
        if self.bn_momentum is not None:
            return self.bn_momentum
        return 0.9 if normalise_weights(self.weights) is None and self.resolved_trainable() == "all" else None

    def defences(self) -> dict:
        """Every anti-shortcut switch of this config, on or off (also inside `to_dict`)."""
        return {name: getattr(self, name) for name in DEFENCE_SWITCHES}

    def harmonisation(self) -> dict:
        """The preprocessing switches, as `PreprocessingSpec.for_backbone` takes them."""
        return {"crop": self.crop, "detail_size": self.detail_size, "intensity": self.intensity}

    def to_dict(self) -> dict:
        out = asdict(self)
        out["augmentation"] = self.augmentation.to_dict()
        return out


DEFENCE_SWITCHES = ("crop", "detail_size", "intensity", "jpeg_augmentation", "counterfactual_augmentation",
                    "outside_lung_blanking", "edge_blanking", "blur_noise", "temperature_scaling")

PRESETS: dict[str, TrainConfig] = {
    # Demo model for `make run` on ml.engine.data.synthetic images (40 per class): learns the signal in
    # about 6 epochs; ~75 s on 2 idle cores, a third of it TensorFlow tracing the training step.
    "demo": TrainConfig(
        backbone="xception", image_size=71, weights=None, trainable="all", epochs=6, batch_size=16, seed=7,
        learning_rate=1e-3, early_stopping_patience=6, augmentation=Augmentation(translation=0.03, rotation=0.0, zoom=0.0, brightness=0.05),
        val_fraction=0.2, test_fraction=0.2, target_sensitivity=0.95, n_boot=200, bn_recalibration_batches=4,
    ),
    # Real X-rays on CPU without ImageNet weights (bench/train_cxr.py's default): whole Xception
    # from scratch at 128 px, with the harmonisation defences. The ablation in docs/engine.md chose
    # them: of the recipes that kept internal AUC, they relied least on acquisition shortcuts
    # (lungs-blanked AUC 0.810 -> 0.716, counterfactual flips 15.3% -> 0.7%, ECE 0.126 -> 0.056).
    # Blanking outside the lungs lowered the lungs-blanked AUC a little more but cost 0.06-0.08
    # internal AUC and half the specificity at that size.
    "cpu-scratch": TrainConfig(
        backbone="xception", image_size=128, weights=None, trainable="all", epochs=12, batch_size=32, seed=42,
        learning_rate=1e-3, early_stopping_patience=4, reduce_lr_patience=2,
        crop="body", detail_size=224, intensity="equalize", temperature_scaling=True,
    ),
    # The documented default for a site with internet (or a local no-top weights file via
    # --weights PATH): the classic recipe below plus the harmonisation and calibration defences.
    "imagenet": TrainConfig(
        backbone="xception", image_size=299, weights="imagenet", trainable="head", epochs=15, fine_tune_epochs=10,
        fine_tune_layers=30, learning_rate=1e-3, fine_tune_learning_rate=1e-5, early_stopping_patience=5,
        crop="body", detail_size=224, intensity="equalize", temperature_scaling=True,
    ),
    # The classic recipe when ImageNet weights are available (GPU advised): frozen Xception at 299,
    # then the top 30 layers fine-tuned at a 100x lower rate.
    "imagenet-transfer": TrainConfig(
        backbone="xception", image_size=299, weights="imagenet", trainable="head", epochs=15, fine_tune_epochs=10,
        fine_tune_layers=30, learning_rate=1e-3, fine_tune_learning_rate=1e-5, early_stopping_patience=5,
    ),
}
