"""Shortcut report of a trained model (ml.engine.judge.shortcuts) on real films, printed as JSON.

    nice -n 10 .venv/bin/python bench/shortcut_report.py --artifact /work/runs/quick71/model.keras \
        --data ../shared/data/cxr-dev --limit 120 --gradcam-limit 40 --out /work/runs/quick71/shortcuts.json

Films: when the artifact has a `model.splits.json` beside it (written by training) and --data is
the folder it was trained on, its test split; otherwise every film of --data (DIR/test/<class>/
if present, else DIR/<class>/). --limit takes that many, spread evenly over the sources.
Acquisition styles come from the training split's films when there is one (up to
--style-films per source), else from the films evaluated.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def spread_over_sources(samples, limit, source_of):
    """Up to `limit` samples taking from each source in turn, in file order within a source."""
    groups: dict[str, list] = {}
    for sample in samples:
        groups.setdefault(source_of(sample), []).append(sample)
    chosen, queues = [], [list(g) for _, g in sorted(groups.items())]
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def samples_for(artifact: Path, data: Path, class_names):
    """(films to report on, training films or None, description)."""
    from ml.engine import Sample, evaluation_samples, find_manifest, read_manifest

    splits_file = artifact.with_suffix(".splits.json")
    if splits_file.exists():
        splits = json.loads(splits_file.read_text())
        if all((data / relpath).exists() for relpath in splits["test"][:20]):
            manifest = find_manifest(data)
            rows = read_manifest(manifest) if manifest else {}

            def make(relpath):
                return Sample(path=data / relpath, relpath=relpath, label=Path(relpath).parent.name,
                              origin=rows.get(relpath, {}).get("origin", ""))

            return [make(r) for r in splits["test"]], [make(r) for r in splits["train"]], "the model's test split"
    samples, described = evaluation_samples(data, class_names=class_names)
    return samples, None, described


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--limit", type=int, help="report on at most this many films, spread over the sources")
    parser.add_argument("--gradcam-limit", type=int, default=40, help="Grad-CAM on this many of them (~1-2 s each)")
    parser.add_argument("--style-films", type=int, default=60, help="training films per source measured for its style")
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    from ml.engine import Predictor, load_image_file, shortcut_report, source_name, styles_from_samples

    started = time.monotonic()
    predictor = Predictor.load(args.artifact)
    data = args.data.resolve()
    samples, training, described = samples_for(args.artifact, data, predictor.class_names)
    if args.limit:
        samples = spread_over_sources(samples, args.limit, lambda s: source_name(s.origin))
    styles = styles_from_samples(training, args.style_films) if training else None
    report = shortcut_report(
        predictor, [load_image_file(s.path) for s in samples], [s.label for s in samples],
        [source_name(s.origin) for s in samples], styles=styles, gradcam_limit=args.gradcam_limit, n_boot=args.n_boot,
    )
    report.update({"films": described, "data": str(data), "artifact": str(args.artifact),
                   "styles_from": "training split" if training else "the films evaluated",
                   "seconds": round(time.monotonic() - started, 1)})
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
