"""Model versions: register what training produced, verify its file, make one active, use one."""
import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction

from ml import audit, model_store, runtime, selectors, trust
from ml.engine import ImageDecodeError, load_image_file
from ml.models import ModelVersion, Promotion
from portal.file_storage import StoreUnavailable

logger = logging.getLogger(__name__)


class PromotionError(Exception):
    pass


def _stored_path(path):
    """Keep paths under the model store relative, so the store can move with its data folder."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(settings.MODEL_STORE_DIR.resolve()))
    except ValueError:
        return str(path)


def publish_artifact(artifact_path, record):
    """Put the artifact, its record, splits and training plots into the model store for every host;
    returns the path to record. With a bucket, an artifact made outside the model store (the
    command line's, a test's) is published under `artifacts/<sha256>/`, where every host finds it."""
    artifact_path = Path(artifact_path)
    stem = artifact_path.with_suffix("")
    companions = [Path(f"{stem}.json"), Path(f"{stem}.splits.json")]
    plots = [artifact_path.parent / name for name in (record.get("metrics", {}).get("plots") or {}).values()]
    files = [artifact_path, *(path for path in companions + plots if path.is_file())]
    if model_store.is_bucket() and model_store.key_of(artifact_path) is None:
        folder = Path(settings.MODEL_STORE_DIR) / "artifacts" / record["sha256"]
        folder.mkdir(parents=True, exist_ok=True)
        files = [Path(shutil.copy2(path, folder / path.name)) for path in files]
    model_store.publish(*files)
    return files[0]


def register_version(*, artifact_path, record, created_by=None, training_job=None):
    """Record a trained artifact as a new candidate version; its fields are copied from the engine's record."""
    preprocessing = record["preprocessing"]
    dataset = record.get("dataset", {})
    return ModelVersion.objects.create(
        artifact_path=_stored_path(publish_artifact(artifact_path, record)),
        sha256=record["sha256"],
        backbone=record["backbone"],
        input_size=preprocessing["image_size"],
        preprocessing=preprocessing,
        class_names=record["class_names"],
        positive_class=record["positive_class"],
        threshold=record["threshold"],
        metrics=record.get("metrics", {}),
        evaluation_set=record.get("evaluation_set", ""),
        dataset_fingerprint=dataset.get("fingerprint", ""),
        split_counts=dataset.get("split_counts", {}),
        training_params=record.get("training", {}),
        library_versions=record.get("library_versions", {}),
        trained_on_synthetic_data=bool(record.get("synthetic", False)),
        record=record,
        training_job=training_job,
        created_by=created_by,
    )


def verify_artifact(version):
    """The artifact a version points at must be there, byte for byte, before it may serve anyone."""
    from ml.engine.model.artifact import ArtifactIntegrityError, verify_artifact as verify

    path = version.artifact_path
    try:
        path = runtime.artifact_path(version)
        verify(path, expected_sha256=version.sha256)
    except FileNotFoundError:
        raise PromotionError(f"The model file of {version.label} is missing ({path}); it cannot be made active.") from None
    except StoreUnavailable as error:
        raise PromotionError(f"The model store did not answer, so the model file of {version.label} could not be checked; try again later. ({error})") from None
    except (ArtifactIntegrityError, model_store.ModelFileMismatch) as error:
        raise PromotionError(f"The model file of {version.label} does not match its recorded sha256; it cannot be made active. ({error})") from error


class PromotionNeedsOverride(PromotionError):
    """The safeguards object: promoting needs an explicit override with a written reason."""

    def __init__(self, version, concerns):
        self.concerns = concerns
        super().__init__(
            f"{version.label} cannot be promoted without an override because " + "; ".join(concerns)
            + ". Tick the override and write why it should serve patients anyway."
        )


def promote_version(version_id, *, actor=None, reason="", override=False, via=None, ip_address=None):
    """Make one version active in a single transaction; a rollback is a promote of an older version.

    The safeguards (ml.trust.promotion_concerns) are asked first: if they object, only an explicit
    `override` with a written reason goes ahead, and the promotion records both. The artifact is
    checked (outside any lock), so a promote never switches every worker to a missing or altered
    file. Then all version rows are locked in id order, so two promotes at once queue up instead of
    racing; the partial unique index backs this up at the database.
    """
    target = ModelVersion.objects.filter(pk=int(version_id)).first()
    if target is None:
        raise PromotionError(f"Model version {version_id} does not exist.")
    reason = audit.written_reason(reason)
    concerns = trust.promotion_concerns(target, selectors.active_version_or_none())
    if concerns and not override:
        raise PromotionNeedsOverride(target, concerns)
    if concerns and not reason:
        raise PromotionError(f"An override of the promotion safeguards needs a written reason; {target.label} was not promoted.")
    verify_artifact(target)
    with transaction.atomic():
        locked = {version.pk: version for version in ModelVersion.objects.select_for_update().order_by("pk")}
        target = locked[target.pk]
        current = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        if current is not None and current.pk == target.pk:
            raise PromotionError(f"{target.label} is already the active version.")
        was_active_before = selectors.has_been_active(target)
        if current is not None:
            current.status = ModelVersion.Status.RETIRED
            current.save(update_fields=["status"])
        target.status = ModelVersion.Status.ACTIVE
        target.save(update_fields=["status"])
        promotion = Promotion.objects.create(
            from_version=current, to_version=target, actor=actor, reason=reason, is_rollback=was_active_before,
            overridden=bool(concerns), concerns=concerns,
        )
        audit.record(actor, "model.promoted", via=via, ip_address=ip_address, version=target.pk, changes={"active": [current.pk if current else None, target.pk]},
                     rollback=was_active_before, reason=promotion.reason, overridden=promotion.overridden, concerns=concerns)
    logger.info("%s made %s active (was %s)%s", actor or "system", target.label, current.label if current else "none",
                f", overriding: {'; '.join(concerns)}; reason: {reason}" if concerns else "")
    return promotion


def predict_files(version, paths):
    """Yield one result per image file, from the given version's artifact (sha256 verified)."""
    from ml.engine import Predictor

    predictor = Predictor.load(runtime.artifact_path(version), expected_sha256=version.sha256)
    for path in paths:
        try:
            pixels = load_image_file(path)
        except (ImageDecodeError, OSError) as error:
            yield {"image": str(path), "version": version.pk, "error": str(error)}
            continue
        result = predictor.predict([pixels])[0]
        yield {"image": str(path), "version": version.pk, "demo": version.trained_on_synthetic_data, **result}
