"""An evaluation is a job of its own: asked for while the broker is down, it still runs later."""
import pytest
from django.urls import reverse

from jobs import lifecycle
from ml.models import Evaluation, EvaluationRun
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_an_evaluate_clicked_while_the_broker_is_down_runs_once_the_sweep_sends_it(
    admin_client, administrator, active_model_version, evaluation_set, broker_outage, celery_worker_process
):
    with broker_outage():
        response = admin_client.post(reverse("ml:version_evaluate", args=[active_model_version.pk]))
    assert response.status_code == 302
    run = EvaluationRun.objects.get()
    assert run.status == EvaluationRun.Status.QUEUED and run.enqueued_at is None and run.created_by == administrator
    assert not Evaluation.objects.exists()

    assert [job.pk for job in lifecycle.sweep().sent] == [run.pk]
    run = wait_for(lambda: EvaluationRun.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).first(), timeout=240, message="the evaluation run")
    assert run.status == EvaluationRun.Status.SUCCEEDED, run.failure_reason
    assert run.evaluation == Evaluation.objects.get(version=active_model_version)
    assert run.evaluation.dataset_path == "evaluation" and run.evaluation.n_images == 12
