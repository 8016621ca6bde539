"""A bounded schemathesis run: every operation of the published schema, called through the Django
WSGI app with an administrator's token (the role that may call every operation), with valid and
invalid generated requests. No answer may be a server error or a status the schema does not list.

Marked `schema`: CI runs it once, on the PostgreSQL pass."""
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import strategies as st
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from diagnosis.models import Prediction
from ml.models import TrainingJob
from tests.api import token_headers

EXAMPLES_PER_OPERATION = 6
pytestmark = pytest.mark.schema


@pytest.fixture
def wsgi_app(db):
    """The project's WSGI app, on the test's database connection: Django closes the connection
    after each request, which would end the test's transaction (its test Client also stops that)."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield get_wsgi_application()
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.fixture
def known_ids(clinician_scan, make_version):
    """Ids of records that exist, so that about half the generated requests reach a real patient,
    scan, result, version and training job instead of a 404. (Never a token id: revoking the run's
    own token would turn the rest into 401s.)"""
    version = make_version()
    # A real stored image under the result: a review of it may be exported as training data.
    prediction = Prediction.objects.create(
        scan=clinician_scan, model_version=version, label="covid", probabilities={"covid": 0.8, "normal": 0.2},
        positive_probability=0.8, threshold=0.5, inference_ms=1, queue_to_result_ms=1,
    )
    job = TrainingJob.objects.create(dataset_path="stand-in", total_epochs=2)
    return {
        "patient_id": str(clinician_scan.patient_id), "scan_id": str(clinician_scan.pk), "prediction_id": prediction.pk,
        "version_id": version.pk, "job_id": job.pk,
    }


def with_known_ids(known_ids):
    def substitute(case):
        if case.path_parameters:
            case.path_parameters = {name: known_ids.get(name, value) for name, value in case.path_parameters.items()}
        return case

    return substitute


def failures_of(operation, mode, auth, calls, known_ids):
    failures = []
    generated = operation.as_strategy(generation_mode=mode)
    strategy = st.one_of(generated, generated.map(with_known_ids(known_ids)))

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def call(case):
        response = case.call(headers=auth)
        calls.append(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        except FailureGroup as failure:
            failures.append(f"{case.method} {case.formatted_path} ({mode.value}): {response.status_code} {str(failure)[:300]}")

    try:
        call()
    except Unsatisfiable:
        pass  # An operation without parameters or body has no invalid request to generate.
    return failures


def test_every_operation_answers_only_documented_statuses_and_never_a_server_error(wsgi_app, administrator, known_ids):
    auth = {"Authorization": token_headers(administrator)["HTTP_AUTHORIZATION"]}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", wsgi_app, headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures, calls = [], {}
    for operation in operations:
        made = calls.setdefault(operation.label, [])  # each operation's own count: a total would hide one never called
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            failures += failures_of(operation, mode, auth, made, known_ids)
    uncalled = [label for label, made in calls.items() if not made]
    assert not uncalled, f"these operations were never called, so nothing was checked of them: {uncalled}"
    assert not failures, "\n".join(failures)
