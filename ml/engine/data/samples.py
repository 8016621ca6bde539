"""The images of a dataset folder: class folders, manifests (patient ids, origins) and the
`Sample` each image becomes; and the images an existing model is measured on (`evaluation_samples`).
How they are split is `splits`."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
MANIFEST_NAMES = ("details.csv", "manifest.csv")


def source_name(origin: str) -> str:
    """Group detailed origins by source: the text before the first ' (' ('COVID-CXNet ... (Italy)'
    and '... (Spain)' are one source)."""
    origin = (origin or "").strip()
    return origin.split(" (")[0].strip() if origin else "unknown"


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

    @property
    def source(self) -> str:
        return source_name(self.origin)


def _visible(path: Path):
    return sorted(entry for entry in path.iterdir() if not entry.name.startswith("."))


def links_leaving(folder: Path, root: Path) -> list[str]:
    """The symbolic links under `folder` (and `folder` itself) whose target is not inside `root`,
    as paths relative to `folder`: reading through them would read files from elsewhere. Links are
    not followed while looking, so a link loop cannot trap the walk."""
    root = Path(root).resolve()
    folder = Path(folder)
    if not Path(os.path.realpath(folder)).is_relative_to(root):
        return ["."]  # the folder itself leads out: nothing in it is looked at
    leaving = []
    for current, directories, files in os.walk(folder, followlinks=False):
        for name in directories + files:
            path = Path(current) / name
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(root):
                leaving.append(path.relative_to(folder).as_posix())
    return sorted(leaving)


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


def samples_in(root: Path, folder: Path, class_files: dict[str, list[Path]], manifest_rows: dict, warnings: list) -> list[Sample]:
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
    samples = samples_in(root, folder, class_files, rows, [])
    where = "test/ of" if folder != root else "all of"
    return samples, f"{where} {root}"
