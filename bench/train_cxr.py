"""Model-quality benchmark on a real chest X-ray folder (e.g. ../shared/data/cxr-dev).

Trains with ml.engine.training.train.train (patient-grouped split from the folder's details.csv), then writes,
next to the artifact in --out:
  train.log            the training log
  model.keras/.json    the artifact and its record (metrics with 95% CIs, per source)
  test_*.png           ROC, calibration and confusion matrix plots of the test split
  gradcam/*.png        Grad-CAM overlays of a few test images from each source
  summary.md           the tables that docs/engine.md quotes

    nice -n 19 .venv/bin/python bench/train_cxr.py --data ../shared/data/cxr-dev --out /work/runs/cxr-128

The source-held-out split of issue 7 (train on BIMCV + RSNA, measure on CXNet + NIH, which the
record and summary.md then show apart, with the caveat that each of those holds one class only):

    nice -n 19 .venv/bin/python bench/train_cxr.py --data ../shared/data/cxr-dev --out /work/runs/cxr-held-out --held-out-sources "COVID-CXNet,NIH"

The preset defaults to `cpu-scratch` (the recipe docs/engine.md's ablation chose); `--preset imagenet`
is the recipe for a site with ImageNet weights.

Write --out outside the repository: the overlays are derived from research-licensed images.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.engine import add_train_arguments, config_from_args  # noqa: E402
from ml.engine.judge.metrics import value_with_interval  # noqa: E402


TABLE_METRICS = ("roc_auc", "sensitivity", "specificity", "ppv", "npv", "accuracy")


def figures(metrics: dict) -> str:
    """The table's metric cells of one row: each value with its interval."""
    return " | ".join(value_with_interval(metrics[name]) for name in TABLE_METRICS)


def summary_markdown(record: dict) -> str:
    m, choice = record["metrics"], record["threshold_selection"]
    counts = record["dataset"]["split_counts"]
    lines = [
        f"Split ({record['dataset']['layout']}, grouped by patient: {record['dataset']['grouped_by_patient']}): "
        + "; ".join(f"{split} " + ", ".join(f"{c} {n}" for c, n in per.items()) for split, per in counts.items()),
        "",
        f"Threshold {record['threshold']:.4f}, chosen on validation for sensitivity >= {choice['target_sensitivity']} "
        f"(validation sensitivity {choice['achieved_sensitivity']:.3f}, specificity {choice['specificity']:.3f}; "
        f"{choice['n_positive']} positive / {choice['n_negative']} negative validation images).",
        "",
        "| test split | n | ROC AUC | sensitivity | specificity | PPV | NPV | accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| all | {m['n']} | {figures(m)} |",
    ]
    for source, s in m.get("per_source", {}).items():
        classes = ", ".join(f"{c} {n}" for c, n in s["classes"].items())
        lines.append(f"| {source} ({classes}) | {s['n']} | {figures(s)} |")
    held = record.get("source_held_out")
    if held:
        lines += ["", f"| source-held-out test ({', '.join(held['sources'])}) | n | ROC AUC | sensitivity | specificity | PPV | NPV | accuracy |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |", f"| all | {held['n']} | {figures(held)} |"]
        for source, s in held.get("per_source", {}).items():
            classes = ", ".join(f"{c} {n}" for c, n in s["classes"].items())
            lines.append(f"| {source} ({classes}) | {s['n']} | {figures(s)} |")
        lines += ["", held["note"]]
    cm = m["confusion_matrix"]
    lines += ["", f"Confusion matrix (rows true, columns predicted, {cm['labels']}): {cm['matrix']}",
              f"Calibration: ECE {m['calibration']['ece']:.3f} (10 bins)."]
    training = record["training"]
    seconds = [h["epoch_seconds"] for h in training["history"]]
    lines += ["", f"Training: {training['epochs_run']} epochs, best epoch {training['best_epoch']} "
              f"(val loss {training['best_val_loss']:.4f}), {training['seconds']:.0f} s in all, "
              f"{sum(seconds) / len(seconds):.0f} s per epoch on average."]
    return "\n".join(lines) + "\n"


def gradcam_examples(artifact: Path, data_dir: Path, out_dir: Path, per_source: int) -> list[dict]:
    from ml.engine import Predictor, find_manifest, load_image_file, read_manifest, source_name

    predictor = Predictor.load(artifact)
    splits = json.loads(artifact.with_suffix(".splits.json").read_text())  # written by train() beside model.keras
    manifest = find_manifest(data_dir)
    rows = read_manifest(manifest) if manifest else {}
    chosen: dict[str, list[str]] = {}
    for relpath in splits["test"]:
        source = source_name(rows.get(relpath, {}).get("origin", ""))
        if len(chosen.setdefault(source, [])) < per_source:
            chosen[source].append(relpath)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source, relpaths in chosen.items():
        for relpath in relpaths:
            pixels = load_image_file(data_dir / relpath)
            result = predictor.predict([pixels])[0]
            heat = predictor.gradcam(pixels)
            name = relpath.replace("/", "__").rsplit(".", 1)[0] + "_gradcam.png"
            (out_dir / name).write_bytes(predictor.gradcam_overlay_png(pixels, heat, max_side=512))
            written.append({"file": name, "image": relpath, "source": source, "label": result["label"],
                            "p_positive": round(result["positive_probability"], 4)})
    (out_dir / "index.json").write_text(json.dumps(written, indent=1))
    return written


def main(argv=None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.set_defaults(preset="cpu-scratch")
    parser.add_argument("--gradcam-per-source", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true", help="only redo summary and Grad-CAM for --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(out / "train.log"), logging.StreamHandler()])
    artifact = out / "model.keras"
    if not args.skip_training:
        from ml.engine import train

        config = config_from_args(args)
        logging.info("Command: %s", " ".join(sys.argv))
        logging.info("Config: %s", json.dumps(config.to_dict(), default=str))
        started = time.monotonic()
        result = train(args.data, out, config)
        artifact = result.artifact_path
        logging.info("Training finished in %.0f s", time.monotonic() - started)
    record = json.loads(artifact.with_suffix(".json").read_text())
    (out / "summary.md").write_text(summary_markdown(record))
    examples = gradcam_examples(artifact, Path(args.data).resolve(), out / "gradcam", args.gradcam_per_source)
    logging.info("Grad-CAM overlays: %s", json.dumps(examples))
    print((out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
