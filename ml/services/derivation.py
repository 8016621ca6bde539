"""Derived versions: the int8 serving model of a version, registered as a version of its own.

int8 changes what the network computes (NNCF's post-training quantisation, calibrated on the
parent's training images), so it is never a silent runtime choice like bf16: it becomes a new
candidate version that points at the SAME Keras artifact (same sha256: Keras stays its reference
and fallback) with an int8 serving export, and it goes through the same evaluation and promotion
safeguards as any version. Every prediction it makes records precision "int8".

Runs where TensorFlow may load (`manage.py derive_int8`, or the training worker when an
administrator clicks "Derive an int8 version": a DerivationRun job), never in a web request.
"""
import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import lifecycle
from ml import audit, model_store, runtime
from ml.models import DerivationRun, ModelVersion, ServingExport

from .serving import export_dir_of, shifted_validation_parts, split_images, validation_images, warm_compiled_cache
from .versions import _stored_path, register_version

logger = logging.getLogger(__name__)


class DerivationRefused(Exception):
    """The derived version was not made; the message says why in one sentence."""


def derived_versions_of(version):
    return ModelVersion.objects.filter(record__derived_from=version.label)


def start_derivation(parent, actor=None, *, keep_fp32=(), enqueue=True, via=None, ip_address=None):
    """Queue the int8 derivation of `parent` for the training worker (the page's button), once
    committed, with the blocks `keep_fp32` left in fp32 (as `manage.py derive_int8 --keep-fp32`).
    The request is in the trail with its address; the worker's outcome is a row of its own.
    One at a time per version: while one is queued or running, raises lifecycle.AlreadyUnderway."""
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(pk=parent.pk).first()  # two requests at once: one run
        running = lifecycle.underway(DerivationRun.objects.filter(version=parent))
        if running is not None:
            raise lifecycle.AlreadyUnderway(f"The int8 derivation of {parent.label} is already {running.status} (run {running.pk}); "
                                            "its outcome appears on the version's page.", running)
        run = DerivationRun.objects.create(version=parent, created_by=actor if actor is not None and actor.is_authenticated else None,
                                           keep_fp32=list(keep_fp32), enqueued_at=None if enqueue else timezone.now())
        audit.record(actor, "model.derivation_started", via=via, ip_address=ip_address, run=run.pk, version=parent.pk, label=parent.label,
                     keep_fp32=list(keep_fp32))
        if enqueue:
            lifecycle.enqueue_on_commit(run)
    return run


def execute_derivation(run_id):
    """Run one queued derivation in this process; the run as it ended, or None when it was not queued."""
    run = lifecycle.run_to_end(DerivationRun, run_id, lambda run: {"derived": derive_int8(run.version, actor=run.created_by, via="worker", keep_fp32=run.keep_fp32)},
                               refusals=DerivationRefused, unexpected_fails=False)
    if run is None:
        return None
    return DerivationRun.objects.select_related("derived").get(pk=run.pk)


def derive_int8(parent, *, actor=None, via=None, keep_fp32=()):
    """Quantise `parent`'s validated OpenVINO export to int8 on its training images, check it
    against Keras on its evaluation images and on films unlike them (held-out sources, other
    sources' styles, harmonisation's extremes: AUC within 0.005, at most 0.5% labels flipped, at
    most 1% of films moved by more than 0.05, faster than fp32) and, if it passes, register it as a new candidate version with that int8 export.
    A refusal is recorded in the audit trail and raised as DerivationRefused (one sentence)."""
    try:
        return _derive_int8(parent, actor, via, tuple(keep_fp32))
    except DerivationRefused as refusal:
        audit.record(actor, "model.derivation_refused", via=via, version=parent.pk, precision="int8", reason=str(refusal))
        logger.warning("%s", refusal)
        raise


def _derive_int8(parent, actor, via, keep_fp32):
    from ml.engine.serve.blocks import UnknownBlocks, kept_operations
    from ml.engine.serve.int8 import INT8_CALIBRATION_IMAGES, quantise_int8, validate_int8

    if parent.precision != "fp32":
        raise DerivationRefused(f"{parent.label} is itself an {parent.precision} version; derive from {parent.record.get('derived_from')} instead.")
    existing = derived_versions_of(parent).first()
    if existing is not None:
        raise DerivationRefused(f"{parent.label} already has an int8 version, {existing.label}.")
    serving = ServingExport.objects.filter(version=parent).first()
    if serving is None or not serving.accepted or not serving.export_path:
        raise DerivationRefused(f"{parent.label} has no validated OpenVINO export to quantise; make one first with "
                                f"`manage.py export_serving --version {parent.pk}`.")
    calibration = split_images(parent, "train", INT8_CALIBRATION_IMAGES)
    if calibration is None:
        raise DerivationRefused(f"The training images of {parent.label} were not found (its .splits.json or dataset folder is "
                                "missing), and int8 is calibrated only on training images.")
    calibration_images, _labels, calibrated_on = calibration
    images, labels, validated_on = validation_images(parent)
    fp32_dir = model_store.export_folder(serving.export_path, serving.record.get("files"))
    # Made in a folder of its own, renamed to the new version's folder once it is registered.
    work_dir = Path(settings.MODEL_STORE_DIR) / "serving" / f"{parent.label}-int8-{uuid.uuid4().hex[:8]}"
    try:
        try:
            try:
                kept = kept_operations(fp32_dir / "serving.xml", keep_fp32)
            except UnknownBlocks as unknown:
                raise DerivationRefused(f"{parent.label}'s serving model {unknown}.") from None
            record = quantise_int8(fp32_dir, work_dir, calibration_images, expected_files=serving.record.get("files"),
                                   calibrated_on=calibrated_on, keep_fp32=kept)
            validation = validate_int8(work_dir, fp32_dir, runtime.artifact_path(parent), images, labels, expected_sha256=parent.sha256,
                                       shifted=shifted_validation_parts(parent, images, labels))
        except DerivationRefused:
            raise
        except Exception as error:  # NNCF or OpenVINO failed: say so in one sentence, details in the log
            logger.exception("Quantising %s to int8 failed", parent.label)
            raise DerivationRefused(f"The serving model of {parent.label} could not be quantised to int8: {type(error).__name__}: {error}") from error
        validation["kept_fp32"] = list(keep_fp32)
        if not validation["accepted"]:
            raise DerivationRefused(f"The int8 version of {parent.label} was refused on {validated_on}: {validation['checks']['int8']['reason']}.")
        version = _register(parent, actor, via, work_dir, record, validation, calibrated_on, validated_on)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)  # renamed away when it was kept
    warm_compiled_cache(version, version.serving_export)
    logger.info("%s derived from %s as int8: %s", version.label, parent.label, validation["reason"])
    return version


def _register(parent, actor, via, work_dir, export_record, validation, calibrated_on, validated_on):
    check = validation["checks"]["int8"]
    # Its own held-out figures are the parent's, measured by Keras; the check above bounds how far
    # int8 may move them, and its own evaluation (needed before promotion) measures int8 itself.
    split = (parent.metrics.get("test") or parent.metrics).get("split") or "test"
    metrics = {**parent.metrics, "evaluated_on": f"{split} split of {parent.label}, measured with Keras before int8"}
    record = {
        **parent.record, "metrics": metrics,
        "derived_from": parent.label, "precision": "int8",
        "calibrated_on": f"{calibrated_on} (training images; NNCF post-training quantisation)",
        "int8_check": {**check, "validated_on": validated_on, "kept_fp32": list(validation.get("kept_fp32", []))},
    }
    with transaction.atomic():
        # The parent's own artifact, by the path it is stored under: with a bucket, runtime.artifact_path
        # is this host's cached copy, which would be published again under a cache/ key.
        version = register_version(artifact_path=model_store.local(parent.artifact_path), record=record, created_by=actor)
        out_dir = export_dir_of(version)
        shutil.rmtree(out_dir, ignore_errors=True)
        work_dir.rename(out_dir)
        model_store.publish(out_dir)
        ServingExport.objects.create(version=version, export_path=_stored_path(out_dir), record=export_record,
                                     validation=validation, validated_on=validated_on[:200])
        audit.record(actor, "model.derived", via=via, version=version.pk, derived_from=parent.pk, precision="int8",
                     calibrated_on=record["calibrated_on"], check={key: check.get(key) for key in (
                         "auc_keras", "auc_int8", "flip_fraction", "heatmap_max_difference", "seconds_fp32", "seconds_int8")})
    return version
