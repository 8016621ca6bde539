"""The one shape of background work: a row that is queued, claimed by a worker, kept alive by its
heartbeat and finished once. Scan inference, training and evaluation are all jobs.

This app sits at the bottom: it never imports the apps that use it, so a concrete job names its
Celery task and queue as strings.
"""
from django.db import models


class Job(models.Model):
    """Abstract: a concrete job sets `task_name` and `queue`, and may replace `Status` and the
    `status` field with its own words, as long as QUEUED, RUNNING and FAILED stay members."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    task_name = None  # the Celery task that runs one job, called with the job's id as a string
    queue = None  # the Celery queue that task is sent to

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the job was last handed to the broker (or to the process running it itself); empty
    # while the broker was unreachable, and the sweep sends it then.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="hostname:pid of the process that ran it last")

    class Meta:
        abstract = True

    @classmethod
    def due(cls):
        """Which queued jobs the sweep may hand to the broker now (a Q); a job that waits out a
        back-off (pacs.models.ResultSend) leaves out those not due yet."""
        return models.Q()
