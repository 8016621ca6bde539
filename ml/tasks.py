"""Celery tasks of the model lifecycle: each hands its message to one service. Both load
TensorFlow and run on the `training` queue (one job at a time per worker), so training and
evaluation never delay inference. jobs.tasks.sweep_jobs re-sends or re-runs them when needed."""
from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_training_job(job_id):
    services.execute_training_job(int(job_id))


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_evaluation(run_id):
    services.execute_evaluation(int(run_id))


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_derivation(run_id):
    services.execute_derivation(int(run_id))
