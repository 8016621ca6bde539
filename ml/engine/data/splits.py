"""Datasets: the images of a folder (found by `samples`) split honestly.

Two folder layouts are understood:

- `DIR/train/<class>/*` and `DIR/test/<class>/*`: the test split is given; a validation split is
  carved from train.
- `DIR/<class>/*`: the engine splits train / validation / test itself.

Class names are the sorted folder names; their order is the order of the model's outputs.
Splits are stratified by class, and grouped by patient when a manifest gives patient ids (a
`details.csv` or `manifest.csv` in DIR with at least the columns `filename` and `patient_id`,
optionally `origin`; `filename` relative to DIR). A row with an empty patient id is a group of
its own. A patient's images therefore never straddle two splits.

Sources can be held out (`held_out_sources`): every image whose origin belongs to one of them is
set aside before the split, so the model never trains, validates or tests on it; train() then
measures the model on them apart (the source-held-out test).

The files, manifests and `Sample`s are in `samples`; the tf.data input pipeline and augmentation
are in `pipeline`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..model.artifact import file_sha256
from .samples import Sample, find_manifest, list_class_folders, read_manifest, samples_in

logger = logging.getLogger(__name__)

SYNTHETIC_MARKER = "SYNTHETIC"
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    root: Path
    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    layout: str  # "train-test" or "class-folders"
    manifest: Path | None = None
    grouped_by_patient: bool = False
    seed: int = 0
    warnings: list[str] = field(default_factory=list)
    held_out_sources: list[str] = field(default_factory=list)
    held_out: list[Sample] = field(default_factory=list)  # the films of held_out_sources, in no split

    def split(self, name: str) -> list[Sample]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def split_counts(self) -> dict:
        return {name: _class_counts(self.split(name), self.class_names) for name in SPLITS}

    @property
    def synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).exists()

    def describe(self) -> dict:
        """What a model record keeps about the data it was trained and measured on."""
        samples = self.train + self.val + self.test + self.held_out
        return {
            "path": str(self.root),
            "layout": self.layout,
            "class_names": list(self.class_names),
            "manifest": self.manifest.name if self.manifest else None,
            "grouped_by_patient": self.grouped_by_patient,
            "split_seed": self.seed,
            "n_images": len(samples),
            "split_counts": self.split_counts(),
            "held_out": {"sources": list(self.held_out_sources), "counts": held_out_counts(self.held_out, self.class_names)}
            if self.held_out_sources else None,
            "fingerprint": content_fingerprint(samples),
            "split_fingerprint": split_fingerprint(self),
            "synthetic": self.synthetic,
            "warnings": list(self.warnings),
        }


def _class_counts(samples, class_names) -> dict:
    counts = Counter(sample.label for sample in samples)
    return {name: int(counts.get(name, 0)) for name in class_names}


def held_out_counts(samples, class_names) -> dict:
    """{source: {class: images}} of held-out films, every class named (0 where a source has none)."""
    by_source = defaultdict(list)
    for sample in samples:
        by_source[sample.source].append(sample)
    return {source: _class_counts(by_source[source], class_names) for source in sorted(by_source)}


# --- splitting -----------------------------------------------------------------------------

def grouped_stratified_split(samples: list[Sample], fractions: dict[str, float], seed: int) -> dict[str, list[Sample]]:
    """Split so that each group (patient) lands in one split, class proportions kept per split.

    Groups are assigned whole, class by class (a group's class is its most frequent label), in a
    seeded random order, filling each held-out split to round(fraction * images of that class)
    (at least one image when the class has enough groups), the rest going to train.
    """
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.group].append(sample)
    by_class: dict[str, list[str]] = defaultdict(list)
    for key, members in groups.items():
        labels = Counter(member.label for member in members)
        top = max(labels.values())
        by_class[min(label for label, n in labels.items() if n == top)].append(key)
    rng = random.Random(seed)
    out: dict[str, list[Sample]] = {"train": []} | {name: [] for name in fractions}
    for label in sorted(by_class):
        keys = sorted(by_class[label])
        rng.shuffle(keys)
        n_images = sum(len(groups[key]) for key in keys)
        held_out = [name for name, fraction in fractions.items() if fraction > 0]
        targets = {}
        for name in held_out:
            target = round(fractions[name] * n_images)
            if target == 0 and len(keys) > len(held_out):
                target = 1
            targets[name] = target
        filled = {name: 0 for name in held_out}
        for key in keys:
            destination = next((name for name in held_out if filled[name] < targets[name]), "train")
            out[destination].extend(groups[key])
            if destination != "train":
                filled[destination] += len(groups[key])
    for name in out:
        out[name].sort(key=lambda sample: sample.relpath)
    return out


def discover_dataset(
    root,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    manifest=None,
    held_out_sources=(),
) -> Dataset:
    """Find the images under `root` and split them (see the module docstring). `held_out_sources`
    names sources (see `resolve_sources`) whose images are set aside before the split."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset folder {root} does not exist.")
    manifest_path = Path(manifest) if manifest else find_manifest(root)
    rows = read_manifest(manifest_path) if manifest_path else {}
    warnings: list[str] = []
    held_out_names: list[str] = []
    held_out: list[Sample] = []
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_files = list_class_folders(root / "train")
        test_files = list_class_folders(root / "test")
        class_names = sorted(train_files)
        if sorted(test_files) != class_names:
            raise ValueError(f"train/ has classes {class_names} but test/ has {sorted(test_files)}.")
        pool = samples_in(root, root / "train", train_files, rows, warnings)
        test = samples_in(root, root / "test", test_files, rows, warnings)
        if held_out_sources:
            held_out_names = resolve_sources(held_out_sources, pool + test)
            pool, held_pool = _set_aside(pool, held_out_names, class_names)
            test, held_test = _set_aside(test, held_out_names, None)
            held_out = sorted(held_pool + held_test, key=lambda sample: sample.relpath)
        parts = grouped_stratified_split(pool, {"val": val_fraction}, seed)
        train, val, layout = parts["train"], parts["val"], "train-test"
        shared = {s.patient_id for s in pool if s.patient_id} & {s.patient_id for s in test if s.patient_id}
        if shared:
            warnings.append(f"{len(shared)} patients have images in both train/ and test/ as given.")
    else:
        class_files = list_class_folders(root)
        class_names = sorted(class_files)
        samples = samples_in(root, root, class_files, rows, warnings)
        if held_out_sources:
            held_out_names = resolve_sources(held_out_sources, samples)
            samples, held_out = _set_aside(samples, held_out_names, class_names)
        parts = grouped_stratified_split(samples, {"val": val_fraction, "test": test_fraction}, seed)
        train, val, test, layout = parts["train"], parts["val"], parts["test"], "class-folders"
    if len(class_names) < 2:
        raise ValueError(f"{root} must hold at least two class folders of images; found {class_names or 'none'}.")
    grouped = any(sample.patient_id for sample in train + val + test)
    dataset = Dataset(root, class_names, train, val, test, layout, manifest_path, grouped, seed, warnings, held_out_names, held_out)
    for name in ("train", "val"):
        missing = [c for c, n in dataset.split_counts()[name].items() if n == 0]
        if missing:
            raise ValueError(f"The {name} split has no images of {missing}; the dataset is too small to split.")
    for warning in warnings:
        logger.warning("%s: %s", root, warning)
    return dataset


def parse_source_names(text: str) -> tuple[str, ...]:
    """'COVID-CXNet, NIH' -> ('COVID-CXNet', 'NIH'): how a command line or a form names sources."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def resolve_sources(asked, samples: list[Sample]) -> list[str]:
    """The source names (`source_name` of the manifest origins) that `asked` stands for, in its
    order: each asked name is a source's full name or the start of exactly one (so "NIH" stands
    for 'NIH ChestX-ray8 "No Finding"'). A name that matches none, or several, is refused with the
    sources the dataset has."""
    available = sorted({sample.source for sample in samples} - {"unknown"})
    if not available:
        raise ValueError("No image names its origin (the manifest has no origin column, or no manifest was found), "
                         "so no source can be held out.")
    resolved = []
    for name in (each.strip() for each in asked):
        if not name:
            continue
        matches = [source for source in available if source == name] or [source for source in available if source.startswith(name)]
        if len(matches) != 1:
            how = "matches several sources" if matches else "is not a source of this dataset"
            raise ValueError(f"“{name}” {how}; its sources are: {'; '.join(available)}.")
        if matches[0] not in resolved:
            resolved.append(matches[0])
    return resolved


def _set_aside(samples: list[Sample], sources: list[str], class_names) -> tuple[list[Sample], list[Sample]]:
    """(the samples of other sources, the samples of `sources`); with `class_names`, refuses a
    hold-out that leaves a class with nothing to train on."""
    kept = [sample for sample in samples if sample.source not in sources]
    held = [sample for sample in samples if sample.source in sources]
    if class_names is not None:
        emptied = sorted(set(class_names) - {sample.label for sample in kept})
        if emptied:
            raise ValueError(f"Holding out {', '.join(sources)} leaves no {' or '.join(emptied)} images to train on.")
    return kept, held


# --- fingerprints --------------------------------------------------------------------------

def content_fingerprint(samples: list[Sample]) -> str:
    """sha256 over the sorted (relative path, file sha256) pairs: the same images give the same value."""
    digest = hashlib.sha256()
    for relpath, sha in sorted((sample.relpath, file_sha256(sample.path)) for sample in samples):
        digest.update(f"{relpath}\0{sha}\n".encode())
    return digest.hexdigest()


def split_fingerprint(dataset: Dataset) -> str:
    """Also covers which image went to which split."""
    listing = {name: sorted(sample.relpath for sample in dataset.split(name)) for name in SPLITS}
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()
