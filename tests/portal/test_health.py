"""/healthz says the process lives, /readyz that the database, the broker and the object store
answer; both without a login, without an audit row, and as often as a load balancer asks. Through
the Django test client against the real database and broker; an outage is a closed port (the
broker, an S3 bucket) or a storage folder that is gone."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from diagnosis.models import AuditEvent


def test_healthz_answers_without_login_and_touches_no_database(client, db):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 0


def test_readyz_reports_each_service_when_all_answer(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok", "object_store": "ok"}}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_names_the_broker_when_it_is_down(client, db, broker_outage):
    with broker_outage():
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "broker": "down", "object_store": "ok"}
    assert body["error"] == "Not ready: the broker does not answer."
    # Public answer: no host, port or library's error text.
    assert "127.0.0.1" not in response.content.decode() and "Error" not in body["error"]


def test_readyz_names_the_scan_store_when_its_folder_is_gone(client, db, settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "scans": {"BACKEND": "portal.file_storage.PrivateFolderStorage",
                                                        "OPTIONS": {"setting": "UNMOUNTED_SCAN_DIR"}}}
    settings.UNMOUNTED_SCAN_DIR = tmp_path / "unmounted"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["object_store"] == "down"
    assert response.json()["error"] == "Not ready: the object store (films and heatmaps) does not answer."


def bucket_at_closed_port():
    """An S3 bucket whose endpoint nobody listens on (port 9, as broker_outage's), as if the store had died."""
    from botocore.config import Config

    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": "portal-gone", "endpoint_url": "http://127.0.0.1:9", "access_key": "k", "secret_key": "s",
        "region_name": "us-east-1", "addressing_style": "path", "client_config": Config(connect_timeout=1, retries={"max_attempts": 1})}}


@pytest.mark.parametrize(("aliases", "part"), [(["scans"], "films and heatmaps"), (["models"], "models"),
                                               (["scans", "models"], "films and heatmaps, models")])
def test_readyz_probes_the_stores_of_scans_and_models(client, db, settings, aliases, part):
    # The default READINESS_STORAGES: the stores uploads, workers and the film views use, not "default".
    settings.STORAGES = {**settings.STORAGES, **{alias: bucket_at_closed_port() for alias in aliases}}
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "broker": "ok", "object_store": "down"}
    assert body["error"] == f"Not ready: the object store ({part}) does not answer."
    assert "127.0.0.1" not in response.content.decode()


def test_two_services_down_are_both_named(client, db, settings, tmp_path, broker_outage):
    settings.READINESS_STORAGES = ["missing"]
    settings.STORAGES = {**settings.STORAGES, "missing": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                          "OPTIONS": {"location": str(tmp_path / "gone")}}}
    with broker_outage():
        response = client.get("/readyz")
    assert response.json()["error"] == "Not ready: the broker and the object store (storage 'missing') do not answer."


@pytest.mark.parametrize("address", ["/healthz", "/readyz"])
def test_probes_are_not_throttled_or_audited(client, db, address):
    # More often than the API's anonymous rate (60 a minute): a load balancer asks every few seconds
    # from every node, and a probe refused for its rate would take a healthy server out.
    statuses = {client.get(address).status_code for _ in range(80)}
    assert statuses == {200}
    assert not AuditEvent.objects.exists()
