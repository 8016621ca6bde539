"""Deploying one-current-review-per-clinician on a database where a clinician reviewed a result
twice: the migration keeps the newest review current and the earlier one as history."""
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("diagnosis", "0004_prediction_runtime_and_grey_heatmap")]
AFTER = [("diagnosis", "0005_api_reviews_and_upload_keys")]


@pytest.mark.django_db(transaction=True)
def test_earlier_duplicate_reviews_become_history(make_version, clinician, clinician_scan):
    version = make_version()
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Prediction, Review = apps.get_model("diagnosis", "Prediction"), apps.get_model("diagnosis", "Review")
    prediction = Prediction.objects.create(
        scan_id=clinician_scan.pk, model_version_id=version.pk, label="covid", probabilities={}, positive_probability=0.9,
        threshold=0.5, inference_ms=1, queue_to_result_ms=1,
    )
    older = Review.objects.create(prediction=prediction, reviewer_id=clinician.pk, agrees=True)
    newer = Review.objects.create(prediction=prediction, reviewer_id=clinician.pk, agrees=False)
    Review.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))

    try:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        Review = executor.loader.project_state(AFTER).apps.get_model("diagnosis", "Review")
        assert Review.objects.get(superseded_at__isnull=True).pk == newer.pk
        assert Review.objects.get(pk=older.pk).superseded_at is not None
    finally:
        # The tests after this one need every migration applied again.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
