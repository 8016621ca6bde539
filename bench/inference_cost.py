"""Inference cost on this machine: load time, latency per image and per batch, Grad-CAM, memory.

    .venv/bin/python bench/inference_cost.py                      # untrained Xception at 299 px
    .venv/bin/python bench/inference_cost.py --image-size 71      # the demo model's size
    .venv/bin/python bench/inference_cost.py --artifact PATH.keras # a real artifact

Without --artifact it builds an Xception with random weights (same architecture and cost as a
trained one), saves it as an artifact in a temporary folder and loads it back like a worker does.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeat=1):
    started = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - started) / repeat, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact")
    parser.add_argument("--backbone", default="xception")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)

    import numpy as np

    from ml.engine.synthetic import make_chest_image

    t_import, _ = timed(lambda: __import__("ml.engine.predictor"))
    from ml.engine.predictor import Predictor

    tmp = None
    artifact = args.artifact
    if artifact is None:
        from ml.engine.artifact import save_artifact
        from ml.engine.model import build_model
        from ml.engine.preprocessing import PreprocessingSpec

        spec = PreprocessingSpec.for_backbone(args.backbone, args.image_size)
        model = build_model(spec.backbone, 2, spec.image_size, weights=None)
        tmp = tempfile.TemporaryDirectory()
        record = {"backbone": spec.backbone, "preprocessing": spec.to_dict(), "class_names": ["covid", "normal"],
                  "positive_class": "covid", "threshold": 0.5}
        artifact, _ = save_artifact(model, tmp.name, record)
        del model
    rss_before = rss_mb()
    t_load, predictor = timed(lambda: Predictor.load(artifact))
    rng = np.random.default_rng(0)
    image = make_chest_image(rng, 1024, opacities=True)
    t_first, _ = timed(lambda: predictor.predict([image]))
    t_one, _ = timed(lambda: predictor.predict([image]), repeat=5)
    images = [make_chest_image(rng, 512) for _ in range(args.batch)]
    t_batch, _ = timed(lambda: predictor.predict(images), repeat=2)
    t_cam_first, heat = timed(lambda: predictor.gradcam(image))
    t_cam, heat = timed(lambda: predictor.gradcam(image), repeat=3)
    t_png, png = timed(lambda: predictor.gradcam_overlay_png(image, heat))
    size = predictor.spec.image_size
    print(f"{predictor.spec.backbone} at {size} px, artifact {Path(artifact).stat().st_size / 1e6:.0f} MB")
    print(f"  import ml.engine.predictor (TensorFlow): {t_import:.1f} s")
    print(f"  Predictor.load (sha256 + Keras load):   {t_load:.1f} s, peak RSS {rss_before:.0f} -> {rss_mb():.0f} MB")
    print(f"  first predict (traces the graph):       {t_first:.2f} s")
    print(f"  predict, 1 image (1024 px source):      {t_one * 1000:.0f} ms")
    print(f"  predict, batch of {args.batch}:                {t_batch * 1000:.0f} ms ({t_batch / args.batch * 1000:.0f} ms per image)")
    print(f"  Grad-CAM first / next:                  {t_cam_first:.2f} s / {t_cam:.2f} s")
    print(f"  overlay PNG (1024 px):                  {t_png * 1000:.0f} ms, {len(png) / 1e3:.0f} kB")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
