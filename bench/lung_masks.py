"""Lung-field mask overlays (ml.engine.prepare.lungs) of a few films of each source, to judge the masks by eye.

    .venv/bin/python bench/lung_masks.py --data ../shared/data/cxr-dev --out /work/notes/masks --per-source 1

Writes one PNG per film (green outline: segmented; red: the fallback guess) and prints, per
source, how many of the films looked at fell back and why. Write --out outside the repository:
the overlays derive from research-licensed films.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="DIR/<class>/* with a details.csv or manifest.csv")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--per-source", type=int, default=1, help="overlays written per source")
    parser.add_argument("--count-per-source", type=int, default=40, help="films per source whose masks are counted")
    args = parser.parse_args(argv)

    from ml.engine import evaluation_samples, load_image_file, source_name
    from ml.engine.prepare.lungs import lung_fields, overlay_png

    samples, _ = evaluation_samples(args.data)
    by_source: dict[str, list] = {}
    for sample in samples:
        by_source.setdefault(source_name(sample.origin), []).append(sample)
    args.out.mkdir(parents=True, exist_ok=True)
    for source, members in sorted(by_source.items()):
        step = max(1, len(members) // args.count_per_source)
        reasons = Counter()
        for index, sample in enumerate(members[::step][:args.count_per_source]):
            pixels = load_image_file(sample.path)
            fields = lung_fields(pixels)
            reasons[fields.reason or "segmented"] += 1
            if index < args.per_source:
                name = sample.relpath.replace("/", "__").rsplit(".", 1)[0] + "_lungs.png"
                (args.out / name).write_bytes(overlay_png(pixels, fields))
        print(f"{source}: {dict(reasons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
