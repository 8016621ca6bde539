"""bench/inference.py --artifact PATH: the runtimes table for a trained model, with the verdict of
its serving check (issue 26).

The random-weights table says what each precision costs; a hospital runs a trained model, whose
reduced precision may or may not keep its answers. For the artifact (`model.keras` with its
`model.json` and `model.splits.json` beside it, its dataset folder where the record says):
- its fp32 OpenVINO export, checked by `validate_export` (bf16 where the CPU has it natively) on
  up to 64 films of its test split, with the parts off the training distribution
  (`ml.engine.serve.shifted`: held-out sources, the other sources' styles, harmonisation's extremes);
- its int8 export, quantised by NNCF on up to 300 of its training films and checked by
  `validate_int8` on the same films and parts;
- each runtime timed at batch 1 and 16 on its own test films, as ratios against OpenVINO fp32
  timed in the same run; which precision the check accepted, and why.
Nothing is forced past the check here: a refused precision is timed and marked refused.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

VALIDATION_FILMS = 64


def _split(data: Path, splits: dict, name: str, limit: int) -> list[str]:
    relpaths = splits.get(name) or []
    if len(relpaths) > limit:
        relpaths = [relpaths[int(i)] for i in np.linspace(0, len(relpaths) - 1, limit)]
    return relpaths


def films_of(artifact: Path) -> dict:
    """The artifact's test films (labels: 1 = the positive class), the shifted parts and its training
    films for int8 calibration, read from its splits and dataset folder."""
    from ml.engine import load_image_file
    from ml.engine.serve.int8 import INT8_CALIBRATION_IMAGES
    from ml.engine.serve.shifted import shifted_parts, sources_of, training_styles

    record = json.loads(artifact.with_suffix(".json").read_text())
    splits = json.loads(artifact.with_suffix(".splits.json").read_text())
    data = Path(record["dataset"]["path"])
    if not data.is_dir():
        raise SystemExit(f"The dataset folder the record names, {data}, is not here: the check needs the model's own films.")
    test = _split(data, splits, "test", VALIDATION_FILMS) or _split(data, splits, "val", VALIDATION_FILMS)
    labels = [int(Path(relpath).parent.name == record["positive_class"]) for relpath in test]
    images = [load_image_file(data / relpath) for relpath in test]
    parts = {}
    held_out = _split(data, splits, "held_out", VALIDATION_FILMS)
    if held_out:
        parts["source-held-out films"] = ([load_image_file(data / r) for r in held_out],
                                          [int(Path(r).parent.name == record["positive_class"]) for r in held_out])
    styles = training_styles(data, splits.get("train") or [])
    parts.update(shifted_parts(images, labels, styles, sources_of(data, test)))
    calibration = [load_image_file(data / relpath) for relpath in _split(data, splits, "train", INT8_CALIBRATION_IMAGES)]
    return {"record": record, "images": images, "labels": labels, "parts": parts, "calibration": calibration,
            "described": f"{len(images)} test films of {data}", "styles": {name: style.to_dict() for name, style in styles.items()}}


def measure(artifact, repeats: int, keep_fp32: tuple[str, ...] = ()) -> dict:
    """Export, check, quantise and time the trained model; plain data for the report. `keep_fp32`
    names blocks (ml.engine.serve.blocks) left in fp32 in its int8 model, as `manage.py derive_int8
    --keep-fp32` leaves them."""
    from bench.ceilings import median_time
    from ml.engine import export_serving_model, quantise_int8, resize_images, validate_export, validate_int8
    from ml.engine.serve.blocks import UnknownBlocks, kept_operations
    from ml.engine.serve.serving import ServingPredictor, available_cores, bf16_supported

    artifact = Path(artifact)
    films = films_of(artifact)
    folder = Path(tempfile.mkdtemp(prefix="bench-trained-"))
    started = time.perf_counter()
    export_serving_model(artifact, folder / "fp32")
    fp32_check = validate_export(folder / "fp32", artifact, films["images"], films["labels"], shifted=films["parts"])
    try:
        kept = kept_operations(folder / "fp32" / "serving.xml", keep_fp32)
    except UnknownBlocks as unknown:
        raise SystemExit(f"The serving model {unknown}.") from None
    quantise_int8(folder / "fp32", folder / "int8", films["calibration"], calibrated_on=f"{len(films['calibration'])} training films",
                  keep_fp32=kept)
    int8_check = validate_int8(folder / "int8", folder / "fp32", artifact, films["images"], films["labels"], shifted=films["parts"])
    report = {
        "artifact": str(artifact), "kept_fp32": list(keep_fp32), "image_size": films["record"]["preprocessing"]["image_size"],
        "validated_on": films["described"], "parts": list(films["parts"]), "prepare_s": time.perf_counter() - started,
        "serving_check": {key: fp32_check[key] for key in ("accepted", "runtime", "precision", "reason", "checks")},
        "int8_check": {key: int8_check[key] for key in ("accepted", "reason", "checks")},
    }
    runtimes = {"keras": ServingPredictor.keras(artifact, threads=available_cores()),
                "openvino_fp32": ServingPredictor.openvino(folder / "fp32", precision="fp32")}
    if bf16_supported():
        runtimes["openvino_bf16"] = ServingPredictor.openvino(folder / "fp32", precision="bf16")
    runtimes["openvino_int8"] = ServingPredictor.openvino(folder / "int8", precision="int8")
    spec = runtimes["keras"].spec
    batches = {n: resize_images((films["images"] * 16)[:n], spec) for n in (1, 16)}
    verdicts = {"keras": "the reference", "openvino_fp32": "accepted" if fp32_check["accepted"] else "refused",
                "openvino_int8": "accepted" if int8_check["accepted"] else "refused"}
    if "openvino_bf16" in runtimes:
        verdicts["openvino_bf16"] = "accepted" if fp32_check["precision"] == "bf16" else "refused"
    report["runtimes"] = {}
    for name, predictor in runtimes.items():
        row = {"check": verdicts[name]}
        for n, batch in batches.items():
            seconds = median_time(lambda: predictor.forward(batch), repeats)
            row[f"batch{n}"] = {"latency_ms": 1000 * seconds, "images_per_s": n / seconds}
        report["runtimes"][name] = row
    fp32_rate = report["runtimes"]["openvino_fp32"]["batch16"]["images_per_s"]
    for row in report["runtimes"].values():
        row["batch16"]["vs_fp32"] = row["batch16"]["images_per_s"] / fp32_rate
    return report


def print_trained(trained: dict) -> None:
    print(f"\ntrained model {trained['artifact']} ({trained['image_size']} px), checked against Keras on {trained['validated_on']} "
          f"and {len(trained['parts'])} parts off the training distribution: {', '.join(trained['parts'])}")
    for name, row in trained["runtimes"].items():
        print(f"{name:14s} batch  1: {row['batch1']['latency_ms']:7.0f} ms   batch 16: {row['batch16']['images_per_s']:6.2f} images/s "
              f"({row['batch16']['vs_fp32']:.2f}x OpenVINO fp32 in this run); check: {row['check']}")
    print(f"served precision: {trained['serving_check']['runtime']} {trained['serving_check']['precision']}: {trained['serving_check']['reason']}")
    kept = f" (blocks kept in fp32: {', '.join(trained['kept_fp32'])})" if trained.get("kept_fp32") else ""
    print(f"int8{kept}: {trained['int8_check']['reason']}")
    for name, part in trained["int8_check"]["checks"].get("int8", {}).get("parts", {}).items():
        print(f"  int8 on the {name} ({part['n_films']}): {part['flip_fraction']:.1%} labels flipped, {part['n_moved']} films moved by > 0.05 "
              f"(largest {part['largest_move']:.3f}){'' if part['passed'] else ': FAILED'}")
