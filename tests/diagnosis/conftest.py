"""Scans and results written straight to the database, for the pages that only read them."""
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from diagnosis.models import Prediction, Review, Scan
from tests.ml.conftest import make_version  # noqa: F401  (a fixture: registers a stand-in model version)


@pytest.fixture
def add_scan():
    def add(patient, status=Scan.Status.QUEUED, minutes_ago=0, uploaded_by=None):
        scan = Scan.objects.create(
            patient=patient, uploaded_by=uploaded_by, stored_name=f"test/{uuid.uuid4().hex}.png", file_format="png",
            width=128, height=128, size_bytes=1000, sha256="0" * 64, status=status,
        )
        # uploaded_at is set on insert; the worklist sorts on it, so tests place scans in time.
        Scan.objects.filter(pk=scan.pk).update(uploaded_at=timezone.now() - timedelta(minutes=minutes_ago))
        scan.refresh_from_db()
        return scan

    return add


@pytest.fixture
def add_result(add_scan):
    """A finished scan with one AI result, optionally reviewed."""

    def add(patient, version, label, probability, minutes_ago=0, reviewed_by=None):
        scan = add_scan(patient, Scan.Status.DONE, minutes_ago)
        prediction = Prediction.objects.create(
            scan=scan, model_version=version, label=label, probabilities={label: probability},
            positive_probability=probability, threshold=0.5, inference_ms=1, queue_to_result_ms=1,
        )
        if reviewed_by:
            Review.objects.create(prediction=prediction, reviewer=reviewed_by, agrees=True)
        # The worklist's columns, as inference.record_prediction and services.review_prediction set them.
        Scan.objects.filter(pk=scan.pk).update(likely_positive=prediction.is_positive, reviewed=bool(reviewed_by))
        scan.refresh_from_db()
        return scan

    return add
