from .models import ModelVersion, Promotion, TrainingJob


class NoActiveModelVersion(Exception):
    pass


def active_version():
    version = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if version is None:
        raise NoActiveModelVersion("No model version is active; an administrator must promote one.")
    return version


def active_version_or_none():
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def versions_for_comparison():
    return ModelVersion.objects.select_related("training_job", "created_by", "parent").order_by("-id")


def promotion_history():
    return Promotion.objects.select_related("from_version", "to_version", "actor")


def training_jobs():
    return TrainingJob.objects.select_related("created_by", "parent_version").prefetch_related("versions")


def can_manage_models(user):
    return user.is_authenticated and user.has_perm("ml.manage_models")
