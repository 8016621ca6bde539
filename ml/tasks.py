"""Celery tasks of the model lifecycle: thin wrappers around the services.

run_training_job and evaluate_version load TensorFlow and run on the `training` queue (one job at
a time per worker), so training never delays inference.
"""
import logging

from celery import shared_task

from . import services
from .models import ModelVersion

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_training_job(job_id):
    # A redelivered message (its worker died) finds the job no longer queued and does nothing;
    # the sweep below marks that job failed.
    job = services.execute_training_job(job_id)
    return job.status if job else None


@shared_task(acks_late=True, reject_on_worker_lost=True)
def evaluate_version(version_id):
    version = ModelVersion.objects.get(pk=version_id)
    try:
        evaluation = services.evaluate_version(version)
    except services.EvaluationError as error:
        logger.warning("Could not evaluate %s: %s", version.label, error)
        return None
    return evaluation.pk


@shared_task
def fail_abandoned_training_jobs():
    failed = services.fail_abandoned_training_jobs()
    if failed:
        logger.warning("Marked abandoned training jobs failed: %s", failed)
    return failed
