"""Which blocks of a trained model move its probability in int8, and which must stay fp32 for its
int8 to pass the serving check (issue 26).

    nice .venv/bin/python bench/precision_blocks.py --artifact /work/runs/cxr-128/model.keras [--json out.json] [--max-kept 6]

1. One block at a time in int8, every other one fp32 (NNCF's ignored scope; the blocks found by
   ml.engine.serve.blocks): how far that block alone moves each film's probability against Keras,
   on the test films and on the parts off the training distribution (ml.engine.serve.shifted).
2. The whole network in int8, then with the most moving blocks kept in fp32, one more at a time,
   until the check's rule holds on every part (AUC within 0.005, at most 0.5% of labels flipped, at
   most 1% of films moved by more than 0.05): which blocks needed fp32, what each step cost in AUC
   and flips, and its speed at batch 16 against fp32 timed in the same run.
bf16 is not measured here when the CPU has no native bf16 (AMX or AVX512-BF16): OpenVINO's serving
path refuses to emulate it (ServingPredictor.openvino), and an emulated figure would say nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ceilings import median_time  # noqa: E402
from bench.trained_model import films_of  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, required=True, help="a trained model.keras with its model.json and model.splits.json")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--max-kept", type=int, default=6, help="at most this many blocks kept in fp32 before giving up")
    args = parser.parse_args(argv)

    from ml.engine import ServingPredictor, export_serving_model, quantise_int8, resize_images
    from ml.engine.serve.blocks import block_operations
    from ml.engine.serve.shifted import VALIDATION_PART, add_shifted_parts, judge_part, per_film_bound
    from ml.engine.serve.serving import cpu_description

    films = films_of(args.artifact)
    parts = {VALIDATION_PART: (films["images"], films["labels"]), **films["parts"]}
    folder = Path(tempfile.mkdtemp(prefix="bench-blocks-"))
    export_serving_model(args.artifact, folder / "fp32")
    reference = ServingPredictor.keras(args.artifact)
    spec, positive = reference.spec, reference.class_names.index(reference.positive_class)
    resized = {name: resize_images(images, spec) for name, (images, _) in parts.items()}
    expected = {name: reference.forward(batch)[0] for name, batch in resized.items()}
    blocks = block_operations(folder / "fp32" / "serving.xml")
    every = [name for names in blocks.values() for name in names]
    report = {"cpu": cpu_description(), "artifact": str(args.artifact), "parts": {n: len(b) for n, b in resized.items()}, "blocks": {}}

    def int8_with(kept: list[str], out: str):
        quantise_int8(folder / "fp32", folder / out, films["calibration"], keep_fp32=tuple(kept))
        return ServingPredictor.openvino(folder / out, precision="int8")

    def moves(predictor) -> dict:
        return {name: per_film_bound(expected[name], predictor.forward(batch)[0], positive) for name, batch in resized.items()}

    for block, names in blocks.items():
        if block == "head":
            continue  # the head's MatMul always stays fp32 (int8.quantise_int8)
        figures = moves(int8_with([n for n in every if n not in names], f"only-{block}"))
        report["blocks"][block] = {"largest_move": max(f["largest_move"] for f in figures.values()),
                                   "n_moved": sum(f["n_moved"] for f in figures.values()), "per_part": figures}
        print(f"{block:10s} alone in int8: largest move {report['blocks'][block]['largest_move']:.4f}, "
              f"{report['blocks'][block]['n_moved']} films moved by > 0.05", flush=True)

    fp32 = ServingPredictor.openvino(folder / "fp32", precision="fp32")
    batch16 = resize_images((films["images"] * 16)[:16], spec)
    fp32_rate = 16 / median_time(lambda: fp32.forward(batch16), 5)
    ranked = sorted(report["blocks"], key=lambda block: -report["blocks"][block]["largest_move"])
    report["steps"] = []
    for kept_count in range(0, args.max_kept + 1):
        kept = ranked[:kept_count]
        predictor = int8_with([n for block in kept for n in blocks[block]], f"kept-{kept_count}")
        got = predictor.forward(resized[VALIDATION_PART])[0]
        check = judge_part(expected[VALIDATION_PART], got, films["labels"], positive, reference.threshold, "int8", auc_required=True)
        add_shifted_parts(check, reference, predictor, films["parts"], spec, positive, reference.threshold, "int8")
        rate = 16 / median_time(lambda: predictor.forward(batch16), 5)
        step = {"kept_fp32": kept, "passed": check["passed"], "reason": check["reason"], "auc_keras": check.get("auc_keras"),
                "auc_int8": check.get("auc_int8"), "flip_fraction": check["flip_fraction"], "images_per_s_batch16": rate,
                "vs_fp32": rate / fp32_rate, "failed_parts": check["failed_parts"]}
        report["steps"].append(step)
        print(f"int8 with {kept or 'no block'} in fp32: {'passes' if check['passed'] else 'refused'}; AUC {step['auc_keras']} -> "
              f"{step['auc_int8']}, {step['flip_fraction']:.1%} flipped, {rate:.2f} images/s at batch 16 = {step['vs_fp32']:.2f}x fp32 "
              f"({fp32_rate:.2f}); {check['reason']}", flush=True)
        if check["passed"]:
            break
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
