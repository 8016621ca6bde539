"""A trained model on disk: `<name>.keras` plus its record `<name>.json` beside it.

The record says everything needed to use and judge the model: backbone, input size, the full
preprocessing spec, class names in output order, positive class, threshold and how it was
chosen, metrics and the split they were measured on, training parameters, the dataset
fingerprint and split counts, library versions, whether the data was synthetic, and the sha256
of the .keras file. Loading verifies that sha256 before Keras reads a byte of the model.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

RECORD_FORMAT = 1


class ArtifactIntegrityError(Exception):
    """The model file is not the one its record (or the caller) vouches for."""


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_path(artifact_path) -> Path:
    return Path(artifact_path).with_suffix(".json")


def library_versions() -> dict:
    import keras
    import numpy
    import tensorflow

    versions = {"python": platform.python_version(), "tensorflow": tensorflow.__version__, "keras": keras.__version__, "numpy": numpy.__version__}
    for name in ("PIL", "pydicom", "sklearn"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # optional extras; a missing one is simply not listed
            pass
    return versions


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def save_artifact(model, output_dir, record: dict, *, name: str = "model", save_h5: bool = False) -> tuple[Path, dict]:
    """Write `<name>.keras` (and `<name>.h5` if asked) and `<name>.json`; return (path, record)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{name}.keras"
    model.save(path)
    record = dict(record)
    record.update({
        "record_format": RECORD_FORMAT,
        "artifact_file": path.name,
        "sha256": file_sha256(path),
        "size_bytes": path.stat().st_size,
        "library_versions": record.get("library_versions") or library_versions(),
    })
    if save_h5:
        h5 = output_dir / f"{name}.h5"
        model.save(h5)
        record["h5_file"], record["h5_sha256"] = h5.name, file_sha256(h5)
    _write_json(record_path(path), record)
    return path, record


def read_record(artifact_path) -> dict:
    path = record_path(artifact_path)
    if not path.is_file():
        raise ArtifactIntegrityError(f"The model {artifact_path} has no record {path.name} beside it.")
    return json.loads(path.read_text())


def verify_artifact(artifact_path, expected_sha256: str | None = None) -> dict:
    """Return the record if the file's sha256 matches the record (and `expected_sha256`)."""
    artifact_path = Path(artifact_path)
    if not artifact_path.is_file():
        raise FileNotFoundError(f"Model file {artifact_path} does not exist.")
    record = read_record(artifact_path)
    is_h5 = artifact_path.suffix == ".h5"
    recorded = record.get("h5_sha256" if is_h5 else "sha256")
    actual = file_sha256(artifact_path)
    if not recorded or actual != recorded:
        raise ArtifactIntegrityError(f"{artifact_path.name} has sha256 {actual}, but its record says {recorded}: refusing to load it.")
    if expected_sha256 and actual != expected_sha256:
        raise ArtifactIntegrityError(f"{artifact_path.name} has sha256 {actual}, not the expected {expected_sha256}: refusing to load it.")
    return record


def load_artifact(artifact_path, expected_sha256: str | None = None):
    """Verify, then load. Returns (keras model, record). Raises ArtifactIntegrityError."""
    import keras

    record = verify_artifact(artifact_path, expected_sha256)
    model = keras.saving.load_model(artifact_path, compile=False, safe_mode=True) if Path(artifact_path).suffix == ".keras" \
        else keras.saving.load_model(artifact_path, compile=False)
    return model, record
