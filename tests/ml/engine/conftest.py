"""Fixtures for the engine tests: small generated images, one tiny model trained once per session.

No Django here: these tests exercise ml.engine directly (the project's conftest still loads, so
they run with or without pytest-django)."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.engine.data.synthetic import make_chest_image

TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 8
FILE_SIZE = 96


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def engine_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("engine")


@pytest.fixture(scope="session")
def two_split_dataset(engine_tmp):
    """DIR/train/<class>/ and DIR/test/<class>/ of synthetic films. The test covid films carry
    fainter opacities than train ones, so the test split would choose a different (lower)
    threshold than the validation split carved from train: a threshold tuned on test shows."""
    root = engine_tmp / "two-split"
    rng = np.random.default_rng(5)
    for split, n, strength in (("train", TRAIN_PER_CLASS, 1.0), ("test", TEST_PER_CLASS, 0.45)):
        for label in ("covid", "normal"):
            for i in range(n):
                image = make_chest_image(rng, FILE_SIZE, opacities=label == "covid", strength=strength)
                write_png(root / split / label / f"{label}_{i:03d}.png", image)
    (root / "SYNTHETIC").touch()
    return root


@pytest.fixture(scope="session")
def trained(two_split_dataset, engine_tmp):
    """The demo preset (Xception, 71 px, random weights) for 4 epochs: about a minute."""
    from ml.engine import TrainConfig, train

    calls = []
    config = TrainConfig.demo(epochs=4, val_fraction=0.25, seed=11)
    result = train(two_split_dataset, engine_tmp / "model", config, on_epoch_end=lambda *args: calls.append(args))
    result.progress_calls = calls
    return result


@pytest.fixture(scope="session")
def predictor(trained):
    from ml.engine import Predictor

    return Predictor.load(trained.artifact_path, expected_sha256=trained.sha256)
