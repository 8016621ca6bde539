"""What the benchmarks set their figures against: the original project's request, and two calls
timed in turn so that a shared host's drift slows both alike."""
from __future__ import annotations

import statistics
import time
from pathlib import Path


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
