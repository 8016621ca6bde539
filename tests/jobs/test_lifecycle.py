"""The job lifecycle on real rows (scans, whose ids are UUIDs, so a message sent here can never be
taken for another test's job): claim, finish, enqueue on commit, the sweep and the heartbeat."""
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from diagnosis.models import Scan, SitePrecisionCheck, SiteRemeasure
from jobs import lifecycle
from ml.models import DerivationRun, EvaluationRun, TrainingJob
from pacs.models import ResultSend

pytestmark = pytest.mark.django_db


def test_every_kind_of_job_is_swept():
    assert set(lifecycle.job_models()) == {Scan, TrainingJob, EvaluationRun, DerivationRun, SiteRemeasure, SitePrecisionCheck, ResultSend}


def test_only_a_queued_job_can_be_claimed_and_each_claim_is_an_attempt(clinician_scan):
    claimed = lifecycle.claim(Scan, clinician_scan.pk)
    assert claimed.status == Scan.Status.RUNNING and claimed.attempts == 1 and claimed.started_at and claimed.worker
    assert lifecycle.claim(Scan, clinician_scan.pk) is None  # a duplicate delivery does nothing


def test_only_the_attempt_that_claimed_a_job_can_finish_it(clinician_scan, settings):
    first = lifecycle.claim(Scan, clinician_scan.pk)
    Scan.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert [job.pk for job in lifecycle.sweep().requeued] == [first.pk]
    second = lifecycle.claim(Scan, clinician_scan.pk)
    assert second.attempts == 2
    assert not lifecycle.finish(first, Scan.Status.FAILED, failure_reason="the old worker woke up")
    assert lifecycle.finish(second, Scan.Status.DONE)
    assert not lifecycle.finish(second, Scan.Status.FAILED), "two endings never overwrite each other"
    assert Scan.objects.get(pk=first.pk).status == Scan.Status.DONE


def test_finishing_a_batch_ends_only_the_attempts_this_process_still_owns(queued_scans, monkeypatch):
    from django.db.models import Case, Value, When

    # The sweep sends nothing: in the PostgreSQL + Redis pass a worker of another test could take the scan first.
    monkeypatch.setattr(lifecycle, "send", lambda model, job_ids: [])
    scans = queued_scans(3)
    claimed = lifecycle.claim_queued(Scan.objects.order_by("uploaded_at"), 3)
    taken = claimed[1]  # its worker went silent; the sweep gave it to another, which finished it
    Scan.objects.filter(pk=taken.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert [job.pk for job in lifecycle.sweep().requeued] == [taken.pk]
    other_attempt = lifecycle.claim(Scan, taken.pk)
    assert lifecycle.finish(other_attempt, Scan.Status.DONE, likely_positive=False)

    owned = lifecycle.finish_all(claimed, Scan.Status.DONE, likely_positive=Case(When(pk=scans[0].pk, then=Value(True)), default=Value(False)))
    assert [job.pk for job in owned] == [scans[0].pk, scans[2].pk]
    assert all(job.status == Scan.Status.DONE and job.finished_at for job in owned)
    rows = {row.pk: row for row in Scan.objects.filter(pk__in=[scan.pk for scan in scans])}
    assert [rows[scan.pk].likely_positive for scan in scans] == [True, False, False]
    assert rows[taken.pk].finished_at == Scan.objects.get(pk=taken.pk).finished_at != owned[0].finished_at, "the other attempt's ending stands"
    assert lifecycle.finish_all(owned, Scan.Status.FAILED) == [], "two endings never overwrite each other"


def test_a_job_enqueued_while_the_broker_is_down_stays_queued_without_enqueued_at(clinician, patient, broker_outage, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from diagnosis import scan_intake
    from tests.images import png_bytes

    with broker_outage(), django_capture_on_commit_callbacks(execute=True) as callbacks:
        (scan,) = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("x.png", png_bytes())])
    assert len(callbacks) == 1
    scan.refresh_from_db()
    assert scan.status == Scan.Status.QUEUED and scan.enqueued_at is None


def test_the_sweep_sends_a_job_never_sent(clinician_scan):
    assert [job.pk for job in lifecycle.sweep().sent] == [clinician_scan.pk]
    assert Scan.objects.get(pk=clinician_scan.pk).enqueued_at is not None


def test_the_sweep_sends_again_a_job_no_worker_took_in_time_but_not_one_sent_recently(clinician_scan, settings):
    Scan.objects.filter(pk=clinician_scan.pk).update(enqueued_at=timezone.now() - timedelta(seconds=30))
    settings.JOB_REQUEUE_AFTER = timedelta(seconds=60)
    assert lifecycle.sweep().sent == []
    settings.JOB_REQUEUE_AFTER = timedelta(seconds=10)
    assert [job.pk for job in lifecycle.sweep().sent] == [clinician_scan.pk]


def test_the_sweep_leaves_a_job_with_a_recent_heartbeat_alone(clinician_scan, settings):
    lifecycle.claim(Scan, clinician_scan.pk)
    swept = lifecycle.sweep()
    assert swept.requeued == swept.failed == swept.sent == []
    assert Scan.objects.get(pk=clinician_scan.pk).status == Scan.Status.RUNNING


def test_a_silent_job_with_attempts_left_is_queued_again_and_sent(clinician_scan, settings):
    lifecycle.claim(Scan, clinician_scan.pk)
    Scan.objects.filter(pk=clinician_scan.pk).update(heartbeat_at=timezone.now() - settings.JOB_HEARTBEAT_TIMEOUT - timedelta(seconds=1))
    swept = lifecycle.sweep()
    assert [job.pk for job in swept.requeued] == [job.pk for job in swept.sent] == [clinician_scan.pk]
    scan = Scan.objects.get(pk=clinician_scan.pk)
    assert scan.status == Scan.Status.QUEUED and scan.attempts == 1 and scan.enqueued_at


def test_a_silent_job_out_of_attempts_fails_once_with_a_reason(clinician_scan, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    job = lifecycle.claim(Scan, clinician_scan.pk)
    Scan.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - settings.JOB_HEARTBEAT_TIMEOUT - timedelta(seconds=1))
    assert [row.pk for row in lifecycle.sweep().failed] == [job.pk]
    scan = Scan.objects.get(pk=job.pk)
    assert scan.status == Scan.Status.FAILED and scan.finished_at
    assert f"The worker {job.worker} stopped responding" in scan.failure_reason and "after 1 attempt(s)" in scan.failure_reason
    assert lifecycle.sweep().failed == []


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stamps_a_running_job_and_says_when_it_is_no_longer_its_own(clinician_scan, settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.1
    job = lifecycle.claim(Scan, clinician_scan.pk)
    claimed_at = job.heartbeat_at
    no_longer_running = threading.Event()
    with lifecycle.heartbeat(job, on_beat=lambda still_running: still_running or no_longer_running.set()):
        deadline = timezone.now() + timedelta(seconds=10)
        while Scan.objects.get(pk=job.pk).heartbeat_at == claimed_at and timezone.now() < deadline:
            threading.Event().wait(0.05)
        assert Scan.objects.get(pk=job.pk).heartbeat_at > claimed_at
        Scan.objects.filter(pk=job.pk).update(status=Scan.Status.QUEUED)  # as the sweep does
        assert no_longer_running.wait(10)


@pytest.mark.django_db(transaction=True)
def test_a_beat_thread_that_died_is_replaced(clinician_scan, settings, monkeypatch):
    """A beat thread can die of an error it cannot survive (seen in CI: the database refused it
    while closing a broken connection); the next job must still beat."""
    settings.JOB_HEARTBEAT_SECONDS = 0.1
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    monkeypatch.setattr(lifecycle, "_thread", dead)
    job = lifecycle.claim(Scan, clinician_scan.pk)
    with lifecycle.heartbeat(job):
        deadline = timezone.now() + timedelta(seconds=10)
        while Scan.objects.get(pk=job.pk).heartbeat_at == job.heartbeat_at and timezone.now() < deadline:
            threading.Event().wait(0.05)
        assert Scan.objects.get(pk=job.pk).heartbeat_at > job.heartbeat_at


def test_the_beat_task_runs_the_sweep(clinician_scan, settings):
    from jobs.tasks import sweep_jobs

    assert settings.CELERY_BEAT_SCHEDULE["sweep-jobs"]["task"] == sweep_jobs.name
    assert sweep_jobs() == {"sent": 1, "requeued": 0, "failed": 0}
    assert Scan.objects.get(pk=clinician_scan.pk).enqueued_at is not None


def test_a_backlog_is_claimed_together_oldest_first_and_only_what_is_queued(queued_scans):
    scans = queued_scans(4)
    lifecycle.claim(Scan, scans[1].pk)  # taken by its own message meanwhile
    waiting = Scan.objects.order_by("uploaded_at")
    claimed = lifecycle.claim_queued(waiting, 2)
    assert [job.pk for job in claimed] == [scans[0].pk, scans[2].pk]
    for job in claimed:
        row = Scan.objects.get(pk=job.pk)
        assert row.status == job.status == Scan.Status.RUNNING and row.attempts == job.attempts == 1
        assert row.worker == job.worker and row.started_at == job.started_at and row.heartbeat_at
    assert [job.pk for job in lifecycle.claim_queued(waiting, 2)] == [scans[3].pk]
    assert lifecycle.claim_queued(waiting, 2) == []
    assert lifecycle.claim(Scan, scans[0].pk) is None, "its own message finds it taken and does nothing"
    assert Scan.objects.get(pk=scans[0].pk).attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_backlog_claim_skips_a_row_another_transaction_holds_instead_of_waiting(queued_scans):
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite locks the whole database for each writer)")
    scans = queued_scans(3)
    holding, release = threading.Event(), threading.Event()

    def hold_the_first():
        with transaction.atomic():
            list(Scan.objects.select_for_update().filter(pk=scans[0].pk))  # as a sender stamping enqueued_at would
            holding.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_first)
    holder.start()
    try:
        assert holding.wait(10)
        assert [job.pk for job in lifecycle.claim_queued(Scan.objects.order_by("uploaded_at"), 5)] == [scans[1].pk, scans[2].pk]
    finally:
        release.set()
        holder.join(10)
    assert lifecycle.claim(Scan, scans[0].pk).attempts == 1, "its own message still claims it"
