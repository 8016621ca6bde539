"""What bench/inference.py and bench/portal_e2e.py set their figures against, and measure alike:
the original project's request, two calls timed in turn so that a shared host's drift slows both
alike, the engine and the original request timed around the portal's drain, and the generated
films both quantise int8 on (so the portal's int8 version is the engine the table measures)."""
from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import numpy as np

# int8 for speed only: random weights have no labels to keep, so it is calibrated on generated
# films (a real derived version is calibrated on its training images and checked against Keras).
CALIBRATED_ON = "generated films (speed only)"


def int8_calibration_films(quick: bool) -> list[np.ndarray]:
    from ml.engine.data.synthetic import make_chest_image

    rng = np.random.default_rng(1)
    return [make_chest_image(rng, 512, opacities=i % 2 == 0) for i in range(16 if quick else 100)]


def paired_medians(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of two calls timed in turn: a host whose speed drifts slows both alike, so
    their ratio holds (bf16 on a 2-core EPYC: 1.18x timed in two loops, 1.11x timed in turn)."""
    first(), second()  # warm-up
    timed = ([], [])
    for _ in range(repeats):
        for function, out in zip((first, second), timed):
            started = time.perf_counter()
            function()
            out.append(time.perf_counter() - started)
    return statistics.median(timed[0]), statistics.median(timed[1])


def original_request(model, png: Path, size: int):
    """The Flask app's request, as a call: keras load_img -> img_to_array -> preprocess_input -> model.predict."""
    import keras

    def request():
        image = keras.utils.load_img(png, target_size=(size, size))
        x = keras.applications.xception.preprocess_input(keras.utils.img_to_array(image)[None])
        model.predict(x, verbose=0)

    return request


class Baselines:
    """The engine the worker runs (the same export and precision, loaded as a worker loads it) at
    batch 16, and the original project's request, timed in turn in this process while no scan is
    being analysed. The drain is set against them as measured just before and just after it, not
    minutes earlier in another process: this host's speed drifts (bench/inference.py's original
    path took 175-224 ms in eight runs of one evening, 359 and 374 ms in two others)."""

    def __init__(self, serving, model, pngs: list[bytes], folder: Path):
        from PIL import Image

        from ml import runtime

        films = [np.asarray(Image.open(io.BytesIO(data))) for data in pngs]
        self.engine = runtime.load_predictor(serving.version, serving)
        self.batch = [self.engine.prepare(film) for film in films]
        png = folder / "film.png"
        png.write_bytes(pngs[0])
        self.request = original_request(model, png, self.engine.spec.image_size)
        self.measured = []

    def measure(self, repeats: int = 3) -> None:
        engine, original = paired_medians(lambda: self.engine.forward_prepared(self.batch), self.request, repeats)
        self.measured.append({"engine_images_per_s": len(self.batch) / engine, "original_ms": 1000 * original})

    def report(self) -> dict:
        return {"each": self.measured, "batch": len(self.batch), "runtime": f"{self.engine.runtime} {self.engine.precision}",
                "engine_images_per_s": statistics.fmean(each["engine_images_per_s"] for each in self.measured),
                "original_ms": statistics.fmean(each["original_ms"] for each in self.measured)}
