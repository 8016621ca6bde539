"""The fast serving model of a version: exported and checked against Keras once, on a training
worker (right after training registers the version) or from `manage.py export_serving`; never in
a web request (it loads TensorFlow and takes seconds). A version without one is served by Keras,
and the worker says so."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
from django.conf import settings

from ml import model_store, runtime
from ml.engine import ImageDecodeError, load_image_file
from ml.models import ServingExport

from .versions import _stored_path

logger = logging.getLogger(__name__)

MAX_VALIDATION_IMAGES = 64
GENERATED_IMAGES = 16
STYLE_FILMS = 60  # training films per source an acquisition style is measured on (the shortcut report's number)


def export_dir_of(version):
    return Path(settings.MODEL_STORE_DIR) / "serving" / f"{version.label}-{version.sha256[:12]}"


def _listing(version, split, limit):
    """(dataset folder, relative paths) of one split of the version's training data, from the
    `.splits.json` training wrote beside the artifact, at most `limit` spread evenly over the split
    (its list runs class by class); None when it cannot be read."""
    splits_file = runtime.artifact_path(version).with_suffix(".splits.json")
    data = Path(version.record.get("dataset", {}).get("path", ""))
    if not (splits_file.is_file() and data.is_dir()):
        return None
    relpaths = json.loads(splits_file.read_text()).get(split) or []
    if len(relpaths) > limit:
        relpaths = [relpaths[int(i)] for i in np.linspace(0, len(relpaths) - 1, limit)]
    return (data, relpaths) if relpaths else None


def _labels(version, relpaths):
    """The class is the folder the film sits in; a label that is not a class leaves the AUC unmeasured."""
    names = [Path(relpath).parent.name for relpath in relpaths]
    return [int(name == version.positive_class) for name in names] if set(names) <= set(version.class_names) else None


def split_images(version, split, limit):
    """(images, labels or None, what they are) of one split of the version's training data (_listing); None when it cannot be read."""
    listing = _listing(version, split, limit)
    if listing is None:
        return None
    data, relpaths = listing
    try:
        images = [load_image_file(data / relpath) for relpath in relpaths]
    except (ImageDecodeError, OSError):
        return None
    return images, _labels(version, relpaths), f"{len(images)} images of the {split} split of {data}"


def validation_images(version):
    """(images, labels or None, what they are): the version's own test split (else validation split);
    else generated images without labels (the fp32 agreement is still checked; bf16 is then
    refused, having no AUC to keep)."""
    for split in ("test", "val"):
        found = split_images(version, split, MAX_VALIDATION_IMAGES)
        if found is not None:
            return found
    rng = np.random.default_rng(0)
    size = version.input_size
    images = [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(GENERATED_IMAGES)]
    return images, None, f"{GENERATED_IMAGES} generated images (the version's own images were not found)"


def shifted_validation_parts(version, images, labels):
    """The films unlike the training set that a reduced precision must also hold on
    (ml.engine.serve.shifted): the source-held-out films where the version has them, and the
    validation films in each other source's acquisition style (measured on up to STYLE_FILMS
    training films per source) and at harmonisation's extremes. {part: (images, labels)}."""
    from ml.engine.serve.shifted import shifted_parts, sources_of, training_styles

    parts = {}
    held_out = split_images(version, "held_out", MAX_VALIDATION_IMAGES)
    if held_out is not None:
        parts["source-held-out films"] = held_out[:2]
    styles, sources = None, None
    training = _listing(version, "train", 100_000)
    if training is not None:
        try:
            styles = training_styles(*training, per_source=STYLE_FILMS)
        except (ImageDecodeError, OSError):
            styles = None
    for split in ("test", "val"):  # the validation films' own sources, so none is re-rendered in its own style
        listing = _listing(version, split, MAX_VALIDATION_IMAGES)
        if listing is not None:
            sources = sources_of(*listing) if len(listing[1]) == len(images) else None
            break
    return {**parts, **shifted_parts(images, labels, styles, sources)}


def prepare_serving(version, *, force=False):
    """Export and validate the version's serving model once; return its ServingExport row.
    A failure is recorded as a refusal with its reason, never raised: Keras serves meanwhile."""
    existing = ServingExport.objects.filter(version=version).first()
    if existing is not None and not force:
        return existing
    if version.precision == "int8":
        # Its int8 export is what the version is (made by derive_int8): check it again, never replace it with fp32.
        return check_serving(version)
    from ml.engine import export_serving_model

    out_dir = export_dir_of(version)
    try:
        shutil.rmtree(out_dir, ignore_errors=True)
        export_serving_model(runtime.artifact_path(version), out_dir, expected_sha256=version.sha256)
        serving = check_serving(version)
    except Exception as error:  # an unsupported head, a converter failure: Keras serves, and says why
        logger.exception("Exporting the serving model of %s failed", version.label)
        refusal = {"accepted": False, "runtime": "keras", "precision": "fp32",
                   "reason": f"The serving model could not be exported or checked: {type(error).__name__}: {error}"}
        return _record(version, export_path="", record={}, validation=refusal, validated_on="")
    if serving.accepted:
        warm_compiled_cache(version, serving)
    return serving


def warm_compiled_cache(version, serving):
    """Load the accepted export once as a worker would, so OpenVINO's cache (beside the model
    store) holds the compiled model and a new worker reads it instead of compiling: its first
    scan is then not seconds late. A failure here only costs that first worker the compile."""
    try:
        runtime.load_predictor(version, serving)
    except Exception:
        logger.warning("Could not pre-compile the serving model of %s", version.label, exc_info=True)


def check_serving(version):
    """Compare the export on disk with Keras on the version's images and record the verdict
    (also to re-check an export that was changed or restored)."""
    from ml.engine import validate_export, validate_int8
    from ml.engine.serve.serving import EXPORT_RECORD

    out_dir = export_dir_of(version)
    images, labels, described = validation_images(version)
    from ml.engine.serve.serving import bf16_supported

    # Only a reduced precision is held to the films off the training distribution; fp32 must match Keras within 1e-4.
    shifted = shifted_validation_parts(version, images, labels) if version.precision == "int8" or bf16_supported() else None
    record = json.loads((out_dir / EXPORT_RECORD).read_text())
    if version.precision == "int8":
        validation = validate_int8(out_dir, export_dir_of(version.derived_from), runtime.artifact_path(version), images, labels,
                                   expected_sha256=version.sha256, shifted=shifted)
    else:
        validation = validate_export(out_dir, runtime.artifact_path(version), images, labels, expected_sha256=version.sha256, shifted=shifted)
    return _record(version, export_path=_stored_path(out_dir), record=record, validation=validation, validated_on=described[:200])


def _record(version, **fields):
    logger.info("Serving model of %s: %s", version.label, fields["validation"]["reason"])
    if fields["export_path"]:
        model_store.publish(runtime.stored_path(fields["export_path"]))
    serving, _ = ServingExport.objects.update_or_create(version=version, defaults=fields)
    return serving
