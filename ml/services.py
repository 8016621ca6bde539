"""Every write to the model lifecycle goes through here."""
from pathlib import Path

from django.conf import settings
from django.db import transaction

from .models import ModelVersion, Promotion


class PromotionError(Exception):
    pass


def _stored_path(path):
    """Keep paths under the model store relative, so the store can move with its data folder."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(settings.MODEL_STORE_DIR.resolve()))
    except ValueError:
        return str(path)


def register_version(*, artifact_path, record, created_by=None, training_job=None, parent=None):
    """Record a trained artifact as a new candidate version; its fields are copied from the engine's record."""
    preprocessing = record["preprocessing"]
    dataset = record.get("dataset", {})
    return ModelVersion.objects.create(
        artifact_path=_stored_path(artifact_path),
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
        parent=parent,
        created_by=created_by,
    )


@transaction.atomic
def promote_version(version_id, *, actor=None, reason=""):
    """Make one version active in a single transaction; a rollback is a promote of an older version.

    All version rows are locked in id order first, so two promotes at once queue up instead of
    racing; the partial unique index backs this up at the database.
    """
    locked = {version.pk: version for version in ModelVersion.objects.select_for_update().order_by("pk")}
    target = locked.get(int(version_id))
    if target is None:
        raise PromotionError(f"Model version {version_id} does not exist.")
    current = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if current is not None and current.pk == target.pk:
        raise PromotionError(f"{target.label} is already the active version.")
    was_active_before = Promotion.objects.filter(to_version=target).exists()
    if current is not None:
        current.status = ModelVersion.Status.RETIRED
        current.save(update_fields=["status"])
    target.status = ModelVersion.Status.ACTIVE
    target.save(update_fields=["status"])
    return Promotion.objects.create(
        from_version=current, to_version=target, actor=actor, reason=reason, is_rollback=was_active_before
    )
