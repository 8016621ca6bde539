"""Command line for the engine, without Django:

    python -m ml.engine.cli train --data DIR --out DIR [--preset cpu-scratch] [--epochs N] [--image-size S] ...
    python -m ml.engine.cli evaluate --artifact OUT/model.keras --data DIR [--plots DIR] [--json FILE]
    python -m ml.engine.cli predict --artifact OUT/model.keras IMAGE... [--gradcam-dir DIR]
    python -m ml.engine.cli synthetic --out DIR [--n-per-class 40] [--image-size 128] [--seed 0]

This is the engine's Django-free research entry: no database, no model registry. The portal's
shell interface is `manage.py train` / `evaluate` / `predict`, which records jobs and versions.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .data.splits import parse_source_names


def add_train_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The training options (`--data`, `--out`, `--preset` and the TrainConfig overrides), for
    this CLI's `train` command and for scripts such as bench/train_cxr.py; read them back with
    `config_from_args`."""
    p.add_argument("--data", required=True, help="DIR/<class>/* or DIR/train|test/<class>/*")
    p.add_argument("--out", required=True, help="output folder for model.keras, model.json, plots")
    p.add_argument("--preset", default=None, help="demo | cpu-scratch | imagenet (the default with internet) | imagenet-transfer (then overridden by flags)")
    p.add_argument("--backbone")
    p.add_argument("--image-size", type=int)
    p.add_argument("--weights", help="imagenet | none | PATH of a no-top weights file")
    p.add_argument("--trainable", choices=["auto", "head", "top", "all"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--fine-tune-epochs", type=int)
    p.add_argument("--fine-tune-layers", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int, dest="early_stopping_patience")
    p.add_argument("--reduce-lr-patience", type=int)
    p.add_argument("--target-sensitivity", type=float)
    p.add_argument("--positive-class")
    p.add_argument("--manifest", help="CSV with filename,patient_id[,origin]; default details.csv/manifest.csv in DIR")
    p.add_argument("--save-h5", action="store_true", default=None)
    p.add_argument("--no-augmentation", action="store_true")
    p.add_argument("--held-out-sources", type=parse_source_names, metavar="NAMES",
                   help='comma-separated sources (the origin before " (", or its unambiguous start, e.g. "COVID-CXNet,NIH") '
                        "whose films are kept out of every split and measured apart after training (the source-held-out test)")
    d = p.add_argument_group("defences against acquisition shortcuts (docs/engine.md)")
    d.add_argument("--crop", choices=["none", "body", "lungs"])
    d.add_argument("--detail-size", type=int, help="resolution harmonisation: longer side brought down to this before resizing (0: off)")
    d.add_argument("--intensity", choices=["none", "equalize", "clahe", "standardize"])
    d.add_argument("--jpeg-augmentation", action=argparse.BooleanOptionalAction)
    d.add_argument("--counterfactual-augmentation", action=argparse.BooleanOptionalAction)
    d.add_argument("--outside-lung-blanking", type=float, metavar="P")
    d.add_argument("--edge-blanking", type=float, metavar="P")
    d.add_argument("--blur-noise", type=float, metavar="P")
    d.add_argument("--temperature-scaling", action=argparse.BooleanOptionalAction)
    return p


def config_from_args(args):
    """The TrainConfig the options of `add_train_arguments` ask for: the preset (or the
    defaults), overridden by each flag given."""
    from .data.pipeline import Augmentation
    from .training.config import DEFENCE_SWITCHES, TrainConfig

    config = TrainConfig.preset(args.preset) if args.preset else TrainConfig()
    names = ["backbone", "image_size", "weights", "trainable", "epochs", "fine_tune_epochs", "fine_tune_layers", "batch_size",
             "learning_rate", "seed", "early_stopping_patience", "reduce_lr_patience", "target_sensitivity", "positive_class",
             "manifest", "save_h5", "held_out_sources", *DEFENCE_SWITCHES]
    overrides = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if overrides.get("detail_size") == 0:
        overrides["detail_size"] = None
    if args.no_augmentation:
        overrides["augmentation"] = Augmentation(0, 0, 0, 0, False)
    return config.with_overrides(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml.engine.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train", help="train a model on a dataset folder"))
    e = sub.add_parser("evaluate", help="measure a saved model on a folder")
    e.add_argument("--artifact", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--manifest")
    e.add_argument("--sha256", help="refuse unless the artifact has this sha256")
    e.add_argument("--plots", help="folder for the ROC / calibration / confusion matrix PNGs")
    e.add_argument("--json", help="write all metrics here")
    pr = sub.add_parser("predict", help="classify image files")
    pr.add_argument("--artifact", required=True)
    pr.add_argument("--sha256")
    pr.add_argument("--gradcam-dir", help="write a Grad-CAM overlay PNG per image here")
    pr.add_argument("images", nargs="+")
    s = sub.add_parser("synthetic", help="write a synthetic demo dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--n-per-class", type=int, default=40)
    s.add_argument("--image-size", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "synthetic":
        from .data.synthetic import make_synthetic_dataset

        print(make_synthetic_dataset(args.out, n_per_class=args.n_per_class, image_size=args.image_size, seed=args.seed))
        return 0
    if args.command == "train":
        from .training.train import train

        config = config_from_args(args)
        logging.getLogger(__name__).info("Config: %s", json.dumps(config.to_dict(), default=str))
        result = train(args.data, args.out, config)
        print(json.dumps({"artifact": str(result.artifact_path), "sha256": result.sha256, "threshold": result.record["threshold"],
                          "test": {k: result.metrics[k] for k in ("roc_auc", "sensitivity", "specificity", "accuracy")}}, indent=2))
        return 0
    if args.command == "evaluate":
        from .judge.evaluate import evaluate_artifact
        from .judge.metrics import headline

        metrics = evaluate_artifact(args.artifact, args.data, manifest=args.manifest, expected_sha256=args.sha256, plots_dir=args.plots)
        if args.json:
            Path(args.json).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print(f"{metrics['evaluation_set']}: n={metrics['n']} {headline(metrics)}")
        for source, m in metrics.get("per_source", {}).items():
            print(f"  {source}: n={m['n']} {headline(m)}")
        return 0
    if args.command == "predict":
        from .decode.images import ImageDecodeError, load_image_file
        from .serve.predictor import Predictor

        predictor = Predictor.load(args.artifact, expected_sha256=args.sha256)
        status = 0
        for name in args.images:
            try:
                pixels = load_image_file(name)
            except (ImageDecodeError, OSError) as error:
                print(json.dumps({"image": name, "error": str(error)}))
                status = 1
                continue
            result = predictor.predict([pixels])[0]
            if args.gradcam_dir:
                folder = Path(args.gradcam_dir)
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"{Path(name).stem}_gradcam.png"
                target.write_bytes(predictor.gradcam_overlay_png(pixels, predictor.gradcam(pixels)))
                result["gradcam"] = str(target)
            print(json.dumps({"image": name, **result}))
        return status
    return 2


if __name__ == "__main__":
    sys.exit(main())
