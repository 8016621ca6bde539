from django.contrib import admin

from .models import Evaluation, EvaluationRun, ModelVersion, Promotion, TrainingJob


class ReadOnlyAdmin(admin.ModelAdmin):
    """Versions, promotions and jobs change only through the portal's services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "backbone", "input_size", "threshold", "trained_on_synthetic_data", "created_at"]


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "from_version", "to_version", "is_rollback"]


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "source", "dataset_path", "epoch", "total_epochs", "attempts", "created_by", "created_at", "heartbeat_at"]


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "dataset_path", "n_images", "created_at"]


@admin.register(EvaluationRun)
class EvaluationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "version", "dataset_path", "attempts", "created_at", "finished_at"]
