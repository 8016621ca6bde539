"""Inference at the machine's limit (engine part): ceilings, each runtime, the original path.

    nice .venv/bin/python bench/inference.py            # Xception 299 px, medians of 5
    nice .venv/bin/python bench/inference.py --quick    # 71 px, medians of 2: a smoke run
    nice .venv/bin/python bench/inference.py --artifact /work/runs/cxr-128/model.keras --no-portal   # and a trained model's table

In one run, on this machine: the CPU model and flags; the fp32, bf16 and int8 matrix-product
ceilings (NumPy and OpenVINO MatMul, GFLOP/s; int8 through FakeQuantize as NNCF places it); the
two-output serving model on each runtime (the Keras compiled call, OpenVINO fp32, OpenVINO bf16
where the CPU has it, OpenVINO int8 quantised by NNCF on generated films: speed only) at batch 1
and 16, in images/s and as a fraction of the ceiling of its precision; the whole per-scan path (resize, one pass,
heatmap), also with the cpu-scratch default's harmonisation (body crop, equalisation); a fresh worker's start (no TensorFlow); the original project's per-request path
(`load_img`, `preprocess_input`, `model.predict`) as the baseline, with ratios against it; and
the portal end to end (bench/portal_e2e.py: PostgreSQL + Redis, gunicorn, one real inference
worker, HTTP uploads: a standing backlog drained by the worker, a backlog whose uploads race the
worker, lone scans, the first scan of a new worker) as ratios against the original path and the
engine, both timed again in turn just before and just after the drain (this host's speed drifts
between the start of a run and its end). Xception has random weights: the cost does not depend on them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.baselines import CALIBRATED_ON, int8_calibration_films, original_request, paired_medians  # noqa: E402
from bench.ceilings import matmul_ceilings, median_time, model_gflop, model_shaped_ceiling  # noqa: E402
from ml.engine.serve.serving import ServingPredictor, available_cores, bf16_supported, cpu_description  # noqa: E402


WORKER_START = """
import re, sys, time
started = time.perf_counter()
import numpy as np
from ml.engine import ServingPredictor
predictor = ServingPredictor.openvino(sys.argv[1], precision=sys.argv[2])
ready = time.perf_counter() - started
predictor.predict_batch([np.full((1024, 1024), 100, np.uint8)])
first = time.perf_counter() - started
peak_kb = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)  # ru_maxrss survives exec
print(ready, first, int(peak_kb) / 1024, "tensorflow" in sys.modules)
"""


def worker_start(export_dir: Path, precision: str) -> dict:
    out = subprocess.run([sys.executable, "-c", WORKER_START, str(export_dir), precision], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    ready, first, rss, tf_loaded = out.stdout.split()
    return {"ready_s": float(ready), "first_scan_s": float(first), "max_rss_mb": float(rss), "tensorflow_imported": tf_loaded == "True"}


def harmonised_preparation(predictor, films, repeats: int) -> dict:
    """What the cpu-scratch default's harmonisation (body crop, 224 px detail, equalisation) adds
    per 1024 px film: one film through the whole per-scan path, and a batch of 16 prepared as the
    worker prepares it (one thread per film) then passed at once."""
    from concurrent.futures import ThreadPoolExecutor

    from ml.engine import PreprocessingSpec, TrainConfig

    spec = PreprocessingSpec.for_backbone("xception", predictor.spec.image_size, **TrainConfig.preset("cpu-scratch").harmonisation())
    harmonised = type(predictor)(predictor.forward, {**predictor.classifier, "preprocessing": spec.to_dict()}, predictor.cam_weights,
                                 runtime=predictor.runtime, precision=predictor.precision)
    pool = ThreadPoolExecutor(len(films))
    scan = median_time(lambda: harmonised.predict_batch(films[:1]), repeats)
    batch = median_time(lambda: harmonised.predict_prepared(list(pool.map(harmonised.prepare, films))), repeats)
    prepare = median_time(lambda: list(pool.map(harmonised.prepare, films)), repeats)
    pool.shutdown()
    return {"runtime": f"{predictor.runtime} {predictor.precision}", "per_scan_ms": 1000 * scan,
            "batch16_ms_per_film": 1000 * batch / len(films), "prepare16_ms_per_film": 1000 * prepare / len(films)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="71 px and medians of 2: checks the script, not the machine")
    parser.add_argument("--image-size", type=int, help="default 299 (71 with --quick)")
    parser.add_argument("--repeats", type=int, help="default 5 (2 with --quick)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--artifact", type=Path, help="a trained model.keras (bench/train_cxr.py's): the same table for it, beside the "
                        "random-weights one, with which precision its check accepted and why (bench/trained_model.py)")
    parser.add_argument("--keep-fp32", default="", help="with --artifact: blocks its int8 model keeps in fp32, e.g. 'block2,block14' "
                        "(bench/precision_blocks.py says which)")
    parser.add_argument("--no-portal", action="store_true", help="skip the portal end to end (needs PostgreSQL and Redis)")
    parser.add_argument("--portal-args", default="", help="passed to bench/portal_e2e.py, e.g. "
                        "'--database NAME --redis-db N --port PORT' so that two runs can share the machine")
    args = parser.parse_args(argv)
    size = args.image_size or (71 if args.quick else 299)
    repeats = args.repeats or (2 if args.quick else 5)

    import keras
    from PIL import Image

    from ml.engine import PreprocessingSpec, build_model, export_serving_model, quantise_int8, resize_images, save_artifact
    from ml.engine.data.synthetic import make_chest_image

    report = {"cpu": cpu_description(), "image_size": size, "repeats": repeats, "load_average_before": os.getloadavg()[0]}
    report["matmul_gflops"] = matmul_ceilings(repeats)
    ceilings = report["matmul_gflops"]["ceiling"]

    keras.utils.set_random_seed(0)
    spec = PreprocessingSpec.for_backbone("xception", size)
    model = build_model("xception", 2, size, weights=None)
    gflop = report["gflop_per_image"] = model_gflop(model)
    shaped = report["matmul_gflops"]["model_shaped_batch16"] = {p: model_shaped_ceiling(model, p, repeats) for p in ceilings}
    folder = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    record = {"backbone": "xception", "preprocessing": spec.to_dict(), "class_names": ["covid", "normal"],
              "positive_class": "covid", "threshold": 0.5}
    artifact, _ = save_artifact(model, folder / "model", record)
    started = time.perf_counter()
    export_serving_model(artifact, folder / "export")
    report["export_s"] = time.perf_counter() - started

    rng = np.random.default_rng(0)
    films = [make_chest_image(rng, 1024, opacities=i % 2 == 0) for i in range(16)]
    calibration = int8_calibration_films(args.quick)
    started = time.perf_counter()
    quantise_int8(folder / "export", folder / "int8", calibration, calibrated_on=CALIBRATED_ON)
    report["int8"] = {"quantise_s": time.perf_counter() - started, "calibration_images": len(calibration)}
    batches = {n: resize_images(films[:n], spec) for n in (1, 16)}
    runtimes = {"keras": ServingPredictor.keras(artifact, threads=available_cores()),
                "openvino_fp32": ServingPredictor.openvino(folder / "export", precision="fp32")}
    if bf16_supported():
        runtimes["openvino_bf16"] = ServingPredictor.openvino(folder / "export", precision="bf16")
    runtimes["openvino_int8"] = ServingPredictor.openvino(folder / "int8", precision="int8")
    # How far the heatmap's feature map and the probabilities move under int8 (random weights: a sanity figure only).
    (p32, f32), (p8, f8) = runtimes["openvino_fp32"].forward(batches[16]), runtimes["openvino_int8"].forward(batches[16])
    report["int8"]["max_probability_difference"] = float(np.abs(p32 - p8).max())
    report["int8"]["feature_relative_error"] = float(np.abs(f32 - f8).mean() / max(np.abs(f32).mean(), 1e-12))

    png = folder / "film.png"
    Image.fromarray(films[0]).save(png)
    baseline = median_time(original_request(model, png, size), repeats)
    report["original_path"] = {"latency_ms": 1000 * baseline, "images_per_s": 1 / baseline}

    report["runtimes"] = {}
    for name, predictor in runtimes.items():
        ceiling = ceilings[predictor.precision]
        row = {}
        for n, batch in batches.items():
            seconds = median_time(lambda: predictor.forward(batch), repeats)
            rate = n / seconds
            row[f"batch{n}"] = {"latency_ms": 1000 * seconds, "images_per_s": rate,
                                "fraction_of_ceiling": rate * gflop / ceiling, "vs_original": rate * baseline}
        row["batch16"]["fraction_of_model_shaped"] = row["batch16"]["images_per_s"] * gflop / shaped[predictor.precision]
        # resize from 1024 px, one pass, label, heatmap; against the engine's batch 1 timed in turn with it
        engine, scan = paired_medians(lambda: predictor.forward(batches[1]), lambda: predictor.predict_batch(films[:1]), 3 * repeats)
        row["per_scan_ms"], row["per_scan_engine_batch1_ms"] = 1000 * scan, 1000 * engine
        row["per_scan_vs_engine_batch1"] = scan / engine
        report["runtimes"][name] = row
    best = "openvino_bf16" if "openvino_bf16" in runtimes else "openvino_fp32"
    report["harmonised"] = harmonised_preparation(runtimes[best], films, repeats)
    report["worker_start"] = worker_start(folder / "export", runtimes[best].precision)
    del runtimes, model  # the portal's processes need the cores and the memory
    if args.artifact:
        from bench.trained_model import measure

        report["trained"] = measure(args.artifact, repeats, tuple(filter(None, args.keep_fp32.split(","))))
    if not args.no_portal:
        report["portal"] = portal_end_to_end(size, args.quick, folder, args.portal_args.split())
    report["load_average_after"] = os.getloadavg()[0]  # the machine is shared: how busy it was

    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def portal_end_to_end(size: int, quick: bool, folder: Path, extra: list[str]) -> dict:
    """bench/portal_e2e.py in its own process (it configures Django and starts the servers)."""
    out = folder / "portal.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "portal_e2e.py"), "--image-size", str(size), "--json", str(out),
                    "--logs", str(folder / "portal-logs"), *(["--quick"] if quick else []), *extra], cwd=ROOT, check=True)
    return json.loads(out.read_text())


def print_portal(report: dict) -> None:
    portal = report["portal"]
    engine = report["runtimes"][portal["runtime"].replace(" ", "_")]
    lone = portal["lone_ms"]
    batch1_ms = engine["batch1"]["latency_ms"]
    # The backlogs against the engine and the original path timed in turn just before and after the
    # drain (bench/portal_e2e.py): the figures above were taken minutes earlier, and this host drifts.
    baselines = portal["baselines"]
    batched, original_ms = baselines["engine_images_per_s"], baselines["original_ms"]
    print(f"portal end to end ({portal['runtime']}, batch size {portal['batch_size']}; PostgreSQL + Redis, gunicorn, one inference worker; "
          f"{portal['failed']} scans failed):")
    print(f"  backlog of {portal['backlog']}, as ratios against the engine at batch 16 ({batched:.2f} images/s) and the original path "
          f"({original_ms:.0f} ms), both timed in turn just before and after the drain (above, earlier: "
          f"{engine['batch16']['images_per_s']:.2f} images/s and {report['original_path']['latency_ms']:.0f} ms):")
    for key, what in (("drain", "a standing backlog drained by the worker (uploads and start-up left out)"),
                      ("racing", "uploads racing the worker (first upload to last result, the web server on the same cores)")):
        rate = portal[key]["scans_per_s"]
        print(f"    {what}: {rate:.2f} scans/s = {rate / batched:.2f} of the engine at batch 16, "
              f"{rate * original_ms / 1000:.2f}x the original path")
    print(f"  lone scans ({portal['lone']}), upload to result: p50 {lone['p50']:.0f} ms, p95 {lone['p95']:.0f} ms = engine batch 1 "
          f"({batch1_ms:.0f} ms) + {lone['p50'] - batch1_ms:.0f} ms at p50; the original path takes {original_ms:.0f} ms "
          f"(p50 ratio {original_ms / lone['p50']:.2f}x as fast)")
    print(f"  first scan after the worker process is started (scan queued before): {portal['first_scan_s']:.2f} s")


def print_report(report: dict) -> None:
    cpu = report["cpu"]
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags'])}; "
          f"1-minute load average {report['load_average_before']:.1f} before, {report['load_average_after']:.1f} after")
    matmul = report["matmul_gflops"]
    print("matrix product GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in matmul["measured"].items()))
    print("ceilings: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in matmul["ceiling"].items()) + "; on the model's own "
          "products at batch 16: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in matmul["model_shaped_batch16"].items()))
    print(f"Xception {report['image_size']} px, random init, {report['gflop_per_image']:.1f} GFLOP/image, "
          f"medians of {report['repeats']}; export took {report['export_s']:.0f} s")
    int8 = report["int8"]
    print(f"int8 (NNCF, calibrated on {int8['calibration_images']} generated films: speed only, no labels to keep): quantised in "
          f"{int8['quantise_s']:.0f} s; against fp32 the probabilities moved by at most {int8['max_probability_difference']:.3f}, "
          f"the feature map by {int8['feature_relative_error']:.1%} (mean relative)")
    original = report["original_path"]
    print(f"original path (load_img, preprocess_input, model.predict): {original['latency_ms']:.0f} ms, {original['images_per_s']:.2f} images/s")
    for name, row in report["runtimes"].items():
        for n in (1, 16):
            cell = row[f"batch{n}"]
            print(f"{name:14s} batch {n:2d}: {cell['latency_ms']:7.0f} ms  {cell['images_per_s']:6.2f} images/s  "
                  f"{cell['fraction_of_ceiling']:.2f} of ceiling  {cell['vs_original']:.2f}x original")
        print(f"{name:14s} batch 16: {row['batch16']['fraction_of_model_shaped']:.2f} of the ceiling on the model's own products")
        print(f"{name:14s} per scan (resize + pass + heatmap): {row['per_scan_ms']:.0f} ms = "
              f"{row['per_scan_vs_engine_batch1']:.2f}x the engine's batch 1 timed in turn with it ({row['per_scan_engine_batch1_ms']:.0f} ms)")
    harmonised = report["harmonised"]
    print(f"with the cpu-scratch default's harmonisation ({harmonised['runtime']}, 1024 px films): per scan "
          f"{harmonised['per_scan_ms']:.0f} ms; a batch of 16 prepared in threads and passed at once "
          f"{harmonised['batch16_ms_per_film']:.1f} ms per film, of which preparing {harmonised['prepare16_ms_per_film']:.1f} ms")
    start = report["worker_start"]
    print(f"fresh OpenVINO worker: ready {start['ready_s']:.2f} s, first scan done {start['first_scan_s']:.2f} s, "
          f"max RSS {start['max_rss_mb']:.0f} MB, TensorFlow imported: {start['tensorflow_imported']}")
    if "portal" in report:
        print_portal(report)
    if "trained" in report:
        from bench.trained_model import print_trained

        print_trained(report["trained"])


if __name__ == "__main__":
    sys.exit(main())
