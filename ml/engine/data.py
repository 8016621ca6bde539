"""Datasets: finding the images, splitting them honestly, and feeding them to Keras.

Two folder layouts are understood:

- `DIR/train/<class>/*` and `DIR/test/<class>/*`: the test split is given; a validation split is
  carved from train.
- `DIR/<class>/*`: the engine splits train / validation / test itself.

Class names are the sorted folder names; their order is the order of the model's outputs.
Splits are stratified by class, and grouped by patient when a manifest gives patient ids (a
`details.csv` or `manifest.csv` in DIR with at least the columns `filename` and `patient_id`,
optionally `origin`; `filename` relative to DIR). A row with an empty patient id is a group of
its own. A patient's images therefore never straddle two splits.

Input pipeline: images are decoded once with `ml.engine.images.load_image_file` (the decoder
uploads use), resized by `preprocessing.resize_images` and kept in memory as uint8 (N, S, S, 1);
that array is the pipeline's cache (1,900 images at 299 px take 170 MB). Pre-loading rather than
a `tf.py_function` per element keeps the Python decoder (PIL, pydicom) out of the tf.data graph
and out of every epoch. Each batch then goes through the augmentation layers (training
pipeline only) and `preprocessing.to_model_input`, with prefetch.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .images import load_image_file
from .preprocessing import PreprocessingSpec, resize_images

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
MANIFEST_NAMES = ("details.csv", "manifest.csv")
SYNTHETIC_MARKER = "SYNTHETIC"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    path: Path
    relpath: str  # relative to the dataset root, forward slashes
    label: str
    patient_id: str = ""
    origin: str = ""

    @property
    def group(self) -> str:
        return f"patient:{self.patient_id}" if self.patient_id else f"image:{self.relpath}"


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

    def split(self, name: str) -> list[Sample]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def split_counts(self) -> dict:
        return {name: _class_counts(self.split(name), self.class_names) for name in SPLITS}

    @property
    def synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).exists()

    def describe(self) -> dict:
        """What a model record keeps about the data it was trained and measured on."""
        samples = self.train + self.val + self.test
        return {
            "path": str(self.root),
            "layout": self.layout,
            "class_names": list(self.class_names),
            "manifest": self.manifest.name if self.manifest else None,
            "grouped_by_patient": self.grouped_by_patient,
            "split_seed": self.seed,
            "n_images": len(samples),
            "split_counts": self.split_counts(),
            "fingerprint": content_fingerprint(samples),
            "split_fingerprint": split_fingerprint(self),
            "synthetic": self.synthetic,
            "warnings": list(self.warnings),
        }


def _class_counts(samples, class_names) -> dict:
    counts = Counter(sample.label for sample in samples)
    return {name: int(counts.get(name, 0)) for name in class_names}


# --- files and manifests -------------------------------------------------------------------

def _visible(path: Path):
    return sorted(entry for entry in path.iterdir() if not entry.name.startswith("."))


def list_class_folders(folder: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} for the sub-folders of `folder` that hold images."""
    classes = {}
    for entry in _visible(folder):
        if entry.is_dir():
            files = [f for f in _visible(entry) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
            if files:
                classes[entry.name] = files
    return classes


def find_manifest(root: Path) -> Path | None:
    """The first of details.csv / manifest.csv in `root` that has `filename` and `patient_id` or `origin`."""
    for name in MANIFEST_NAMES:
        path = root / name
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), [])
            if "filename" in header and ("patient_id" in header or "origin" in header):
                return path
    return None


def read_manifest(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "filename" not in (reader.fieldnames or []):
            raise ValueError(f"The manifest {path} has no 'filename' column.")
        rows = {}
        for row in reader:
            key = row["filename"].strip().replace("\\", "/").removeprefix("./")
            rows[key] = {
                "label": (row.get("label") or "").strip(),
                "patient_id": (row.get("patient_id") or "").strip(),
                "origin": (row.get("origin") or "").strip(),
            }
        return rows


def _samples(root: Path, folder: Path, class_files: dict[str, list[Path]], manifest_rows: dict, warnings: list) -> list[Sample]:
    samples, mismatched = [], 0
    for label, files in class_files.items():
        for path in files:
            relpath = path.relative_to(root).as_posix()
            inner = path.relative_to(folder).as_posix()
            row = manifest_rows.get(relpath) or manifest_rows.get(inner) or {}
            if row.get("label") and row["label"] != label:
                mismatched += 1
            samples.append(Sample(path, relpath, label, row.get("patient_id", ""), row.get("origin", "")))
    if mismatched:
        warnings.append(f"{mismatched} manifest labels differ from their folder; the folder name was used.")
    return samples


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
) -> Dataset:
    """Find the images under `root` and split them (see the module docstring)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset folder {root} does not exist.")
    manifest_path = Path(manifest) if manifest else find_manifest(root)
    rows = read_manifest(manifest_path) if manifest_path else {}
    warnings: list[str] = []
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_files = list_class_folders(root / "train")
        test_files = list_class_folders(root / "test")
        class_names = sorted(train_files)
        if sorted(test_files) != class_names:
            raise ValueError(f"train/ has classes {class_names} but test/ has {sorted(test_files)}.")
        pool = _samples(root, root / "train", train_files, rows, warnings)
        test = _samples(root, root / "test", test_files, rows, warnings)
        parts = grouped_stratified_split(pool, {"val": val_fraction}, seed)
        train, val, layout = parts["train"], parts["val"], "train-test"
        shared = {s.patient_id for s in pool if s.patient_id} & {s.patient_id for s in test if s.patient_id}
        if shared:
            warnings.append(f"{len(shared)} patients have images in both train/ and test/ as given.")
    else:
        class_files = list_class_folders(root)
        class_names = sorted(class_files)
        samples = _samples(root, root, class_files, rows, warnings)
        parts = grouped_stratified_split(samples, {"val": val_fraction, "test": test_fraction}, seed)
        train, val, test, layout = parts["train"], parts["val"], parts["test"], "class-folders"
    if len(class_names) < 2:
        raise ValueError(f"{root} must hold at least two class folders of images; found {class_names or 'none'}.")
    grouped = any(sample.patient_id for sample in train + val + test)
    dataset = Dataset(root, class_names, train, val, test, layout, manifest_path, grouped, seed, warnings)
    for name in ("train", "val"):
        missing = [c for c, n in dataset.split_counts()[name].items() if n == 0]
        if missing:
            raise ValueError(f"The {name} split has no images of {missing}; the dataset is too small to split.")
    for warning in warnings:
        logger.warning("%s: %s", root, warning)
    return dataset


def evaluation_samples(root, *, manifest=None, class_names=None) -> tuple[list[Sample], str]:
    """The images an existing model is measured on: `root/test/<class>/` when `root` is a split
    dataset, else every image of `root/<class>/`. Returns (samples, description)."""
    root = Path(root).resolve()
    folder = root / "test" if (root / "test").is_dir() else root
    manifest_path = Path(manifest) if manifest else find_manifest(root)
    rows = read_manifest(manifest_path) if manifest_path else {}
    class_files = list_class_folders(folder)
    if not class_files:
        raise ValueError(f"{folder} holds no class folders of images.")
    if class_names is not None:
        unknown = sorted(set(class_files) - set(class_names))
        if unknown:
            raise ValueError(f"{folder} has classes {unknown} the model does not know (it knows {list(class_names)}).")
    samples = _samples(root, folder, class_files, rows, [])
    where = "test/ of" if folder != root else "all of"
    return samples, f"{where} {root}"


# --- fingerprints --------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


# --- loading and tf.data -------------------------------------------------------------------

def load_images(samples: list[Sample], spec: PreprocessingSpec, *, workers: int = 2, chunk: int = 64) -> np.ndarray:
    """Decode (threads: PIL releases the GIL) and resize, chunk by chunk so full-size decoded
    images are never all in memory at once. -> uint8 (N, S, S, 1)."""
    out = np.empty((len(samples), spec.image_size, spec.image_size, 1), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(samples), chunk):
            batch = samples[start:start + chunk]
            decoded = list(pool.map(lambda sample: load_image_file(sample.path), batch))
            out[start:start + len(batch)] = resize_images(decoded, spec)
    return out


@dataclass
class Augmentation:
    """Training-only augmentation; 0 (or False) switches a transform off.

    translation: fraction of height/width; rotation: fraction of a full turn (0.03 = about 11
    degrees); zoom: fraction; brightness: fraction of the 0-255 range. Horizontal flips are off by
    default: a mirrored chest film puts the heart on the right and mirrors the laterality markers,
    which real PA/AP films never show outside dextrocardia."""

    translation: float = 0.05
    rotation: float = 0.03
    zoom: float = 0.1
    brightness: float = 0.1
    flip: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def enabled(self) -> bool:
        return any((self.translation, self.rotation, self.zoom, self.brightness, self.flip))


def build_augmenter(augmentation: Augmentation, seed: int = 0):
    """A keras.Sequential of Keras' random preprocessing layers, acting on grey values 0-255."""
    import keras

    if not augmentation.enabled:
        return None
    layers = []
    if augmentation.translation:
        t = augmentation.translation
        layers.append(keras.layers.RandomTranslation(t, t, fill_mode="constant", fill_value=0.0, seed=seed + 1))
    if augmentation.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 2))
    if augmentation.rotation:
        layers.append(keras.layers.RandomRotation(augmentation.rotation, fill_mode="constant", fill_value=0.0, seed=seed + 3))
    if augmentation.zoom:
        layers.append(keras.layers.RandomZoom(augmentation.zoom, fill_mode="constant", fill_value=0.0, seed=seed + 4))
    if augmentation.brightness:
        layers.append(keras.layers.RandomBrightness(augmentation.brightness, value_range=(0.0, 255.0), seed=seed + 5))
    return keras.Sequential(layers, name="training_augmentation")


def one_hot(labels: list[int], num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def make_tf_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    spec: PreprocessingSpec,
    *,
    batch_size: int = 32,
    training: bool = False,
    augmenter=None,
    seed: int = 0,
):
    """(uint8 (N,S,S,1), one-hot labels) -> batches of (float32 (B,S,S,3), labels).

    Only a training dataset shuffles and augments; validation and test datasets apply exactly
    `preprocessing.to_model_input`, as the predictor does."""
    import tensorflow as tf

    from .preprocessing import to_model_input

    if augmenter is not None and not training:
        raise ValueError("Augmentation belongs to the training pipeline only.")
    autotune = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(tf.cast(x, tf.float32), training=True), y), num_parallel_calls=autotune)
    ds = ds.map(lambda x, y: (to_model_input(x, spec), y), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


def class_weights(labels: list[int], num_classes: int) -> dict[int, float] | None:
    """Balanced weights n / (k * n_c) when the classes are unbalanced, else None."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if counts.min() == counts.max():
        return None
    total = counts.sum()
    return {i: float(total / (num_classes * count)) if count else 0.0 for i, count in enumerate(counts)}
