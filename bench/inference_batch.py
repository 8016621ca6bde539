"""How much faster is the predictor's compiled batch call than calling model.predict per image?

    .venv/bin/python bench/inference_batch.py [--artifact var/models/demo/model.keras] [--images 64] [--repeats 3]

Both sides run in this process on the same images and model, interleaved, so the ratio holds on
a noisy shared machine even where the absolute times do not. Without --artifact it trains the
demo model into a temporary folder first (a minute or two).
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.engine.predictor import Predictor  # noqa: E402
from ml.engine.preprocessing import prepare_batch  # noqa: E402
from ml.engine.synthetic import make_chest_image  # noqa: E402


def timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, help="a .keras artifact with its JSON record beside it")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    artifact = args.artifact
    if artifact is None:
        from ml.engine.synthetic import make_synthetic_dataset
        from ml.engine.config import TrainConfig
        from ml.engine.train import train

        folder = Path(tempfile.mkdtemp(prefix="bench-"))
        make_synthetic_dataset(folder / "data", n_per_class=12, image_size=128, seed=1)
        artifact = train(folder / "data", folder / "model", TrainConfig.demo(epochs=1)).artifact_path

    predictor = Predictor.load(artifact)
    rng = np.random.default_rng(0)
    images = [make_chest_image(rng, 256, opacities=bool(i % 2)) for i in range(args.images)]

    def baseline():  # what a straightforward port does: one model.predict per image
        for image in images:
            predictor.model.predict(prepare_batch([image], predictor.spec), verbose=0)

    def batched():
        predictor.predict(images)

    def single_scan_baseline():
        predictor.model.predict(prepare_batch(images[:1], predictor.spec), verbose=0)

    def single_scan():
        predictor.predict(images[:1])

    for warm_up in (baseline, batched, single_scan_baseline, single_scan):
        warm_up()
    rows = {"baseline": [], "batched": [], "single_baseline": [], "single": []}
    for _ in range(args.repeats):
        rows["baseline"].append(timed(baseline))
        rows["batched"].append(timed(batched))
        rows["single_baseline"].append(statistics.median(timed(single_scan_baseline) for _ in range(10)))
        rows["single"].append(statistics.median(timed(single_scan) for _ in range(10)))
    median = {name: statistics.median(values) for name, values in rows.items()}
    record = predictor.record
    print(f"model: {record['backbone']} {record['input_size']}px, {args.images} images of 256x256, median of {args.repeats} runs")
    print(f"{args.images} images, model.predict per image (baseline): {median['baseline']:.3f} s")
    print(f"{args.images} images, Predictor.predict in one call:      {median['batched']:.3f} s")
    print(f"  speed-up of the batch path: {median['baseline'] / median['batched']:.1f}x")
    print(f"1 image, model.predict (baseline): {1000 * median['single_baseline']:.1f} ms")
    print(f"1 image, Predictor.predict:        {1000 * median['single']:.1f} ms")
    print(f"  speed-up for one scan (the worker's path): {median['single_baseline'] / median['single']:.1f}x")


if __name__ == "__main__":
    main()
