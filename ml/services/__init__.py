"""Every write to the model lifecycle, one module per workflow. The portal pages, the Celery
tasks and the management commands all call these, so a thing is done one way whichever door it
came in by. TensorFlow is imported only inside the functions that train, evaluate or predict.

The names are gathered here so callers write `services.promote_version(...)` whatever the module.
"""
from .datasets import DatasetCheck, TrainingRefused, check_dataset_folder, check_evaluation_folder, export_dataset_snapshot
from .derivation import DerivationRefused, derive_int8, execute_derivation, start_derivation
from .evaluation import NO_EVALUATION_SET, EvaluationError, comparison_plot_path, execute_evaluation, record_evaluation, start_evaluation
from .serving import check_serving, prepare_serving
from .training import cancel_training_job, execute_training_job, start_training_job
from .versions import PromotionError, PromotionNeedsOverride, predict_files, promote_version, register_version, verify_artifact

__all__ = [
    "DatasetCheck", "TrainingRefused", "check_dataset_folder", "check_evaluation_folder", "export_dataset_snapshot",
    "DerivationRefused", "derive_int8", "execute_derivation", "start_derivation",
    "NO_EVALUATION_SET", "EvaluationError", "comparison_plot_path", "execute_evaluation", "record_evaluation", "start_evaluation",
    "check_serving", "prepare_serving",
    "cancel_training_job", "execute_training_job", "start_training_job",
    "PromotionError", "PromotionNeedsOverride", "predict_files", "promote_version", "register_version", "verify_artifact",
]
