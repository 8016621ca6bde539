import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

from diagnosis import roles
from diagnosis.models import Patient, Site, StaffProfile
from portal import bootstrap
from tests.shared_data import SHARED_DATA, skipped_for_missing_data

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pytest_terminal_summary(terminalreporter):
    """A clone without the shared data skips its real-data tests: say how many, not only in -ra's list."""
    skipped = skipped_for_missing_data(terminalreporter.stats.get("skipped", []))
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} real-data tests skipped: no shared data at {SHARED_DATA} (set PORTAL_SHARED_DATA to its folder).")


@pytest.fixture(scope="session", autouse=True)
def private_storage(tmp_path_factory):
    """Scans, heatmaps, models and datasets of the test session live in a throw-away folder; the
    data folder (SQLite test database) and the filesystem broker's folders are made here too,
    because importing the settings creates nothing."""
    root = tmp_path_factory.mktemp("portal-data")
    for setting, folder in (("SCAN_STORAGE_DIR", "scans"), ("MODEL_STORE_DIR", "models"), ("DATASETS_ROOT", "datasets")):
        setattr(settings, setting, root / folder)
    bootstrap.create_folders(settings)
    return root


OBJECT_STORE = os.environ.get("PORTAL_TEST_OBJECT_STORE", "filesystem")


@pytest.fixture(scope="session", autouse=True)
def object_store(tmp_path_factory):
    """With PORTAL_TEST_OBJECT_STORE=seaweedfs (CI's PostgreSQL pass) every file of the session, the
    test process's and its worker processes', lives in a real SeaweedFS bucket (tests/seaweedfs.py);
    otherwise in the session's folders. Yields the SeaweedFS, or None."""
    if OBJECT_STORE != "seaweedfs":
        yield None
        return
    from django.test.utils import override_settings

    from tests.seaweedfs import WEED_ABSENT, SeaweedFS, weed_binary

    if weed_binary() is None:
        pytest.exit(f"PORTAL_TEST_OBJECT_STORE=seaweedfs, but {WEED_ABSENT}.", returncode=4)
    store = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    pointed = override_settings(**store.settings())
    pointed.enable()
    # The worker processes the tests start read the same variables as a deployment (worker_environment copies them).
    os.environ.update(store.environment())
    yield store
    for name in store.environment():
        os.environ.pop(name, None)
    pointed.disable()
    store.stop()


# Tests of the local scan folder itself (file modes, the decoded copies web and worker share there,
# links into it) run only when the session keeps its files in folders.
local_folders_only = pytest.mark.skipif(OBJECT_STORE == "seaweedfs", reason="checks the local scan folder itself; this session keeps its files in SeaweedFS")


def stored_files():
    """What the scan storage holds: the folder's files, or the bucket's keys (through the storage
    API) when the session keeps its files in SeaweedFS, so "nothing was stored" holds on both."""
    if OBJECT_STORE == "seaweedfs":
        from diagnosis import storage

        return sorted(Path(name) for name in storage.stored_names())
    return sorted(path for path in Path(settings.SCAN_STORAGE_DIR).rglob("*") if path.is_file())


def signed_in(user):
    """A browser session of the user (Django's test client)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def make_user(username, group=None, site=None):
    user = User.objects.create_user(username=username, password="not-used-in-tests-1")
    if group:
        user.groups.add(Group.objects.get(name=group))
        user.is_staff = group == roles.ADMINISTRATORS
        user.save()
    StaffProfile.objects.create(user=user, site=site)
    return user


# The suite's two sites are live (their clinicians see results); a new site starts silent, and the
# silent period's tests (tests/diagnosis/test_silent_sites.py) make their own.
@pytest.fixture
def site_a(db):
    return Site.objects.create(name="St Elsewhere", code="ste", mode=Site.Mode.LIVE)


@pytest.fixture
def site_b(db):
    return Site.objects.create(name="County General", code="cg", mode=Site.Mode.LIVE)


@pytest.fixture
def clinician(site_a):
    return make_user("dr_a", roles.CLINICIANS, site_a)


@pytest.fixture
def other_site_clinician(site_b):
    return make_user("dr_b", roles.CLINICIANS, site_b)


@pytest.fixture
def administrator(site_a):
    return make_user("admin_a", roles.ADMINISTRATORS, site_a)


@pytest.fixture
def user_without_role(site_a):
    return make_user("no_role", None, site_a)


@pytest.fixture
def patient(site_a, clinician):
    return Patient.objects.create(site=site_a, medical_record_number="MRN-0001", family_name="Okafor", given_name="Ada", created_by=clinician)


@pytest.fixture
def clinician_client(client, clinician):
    client.force_login(clinician)
    return client


def database_url():
    """The URL of the database the tests use (the test database once pytest-django made it)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_environment():
    """What a worker subprocess needs to share the test database and storage with the tests."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE or os.environ["DJANGO_SETTINGS_MODULE"],  # None while override_settings is on
        DATABASE_URL=database_url(),
        PORTAL_SCAN_DIR=str(settings.SCAN_STORAGE_DIR),
        PORTAL_MODEL_DIR=str(settings.MODEL_STORE_DIR),
        PORTAL_DATASETS_ROOT=str(settings.DATASETS_ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


CELERY = [sys.executable, "-m", "celery", "-A", "portal"]


# The session's worker serves every queue: a test that waits for a result's SC and SR in Orthanc
# needs the pacs queue served (bin/portal runs it as a worker of its own).
SESSION_QUEUES = "inference,training,pacs"


def start_celery_worker(log_path, queues=SESSION_QUEUES, extra_env=None):
    """Start `celery worker` as its own process group and wait until it says it is ready."""
    env = {**worker_environment(), **(extra_env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*CELERY, "worker", "--queues", queues, "--concurrency", "1", "--loglevel", "INFO", "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"],
            env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    process.log_path = Path(log_path)
    deadline = time.monotonic() + 120
    while b" ready." not in process.log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"The Celery worker did not start:\n{process.log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    return process


def stop_celery_worker(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# The token the session's worker serves its Prometheus metrics behind (tests/portal/test_metrics.py).
WORKER_METRICS_TOKEN = "test-only-metrics-token"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, private_storage):
    """A real `celery worker` process, on the configured broker, against the test database. It serves
    its metrics as bin/portal's would, at `process.metrics_url` behind WORKER_METRICS_TOKEN."""
    with django_db_blocker.unblock():
        env = worker_environment()
    subprocess.run([*CELERY, "purge", "-f", "-Q", SESSION_QUEUES], env=env, cwd=PROJECT_ROOT, capture_output=True, timeout=60)
    metrics_dir, metrics_port = private_storage / "worker-metrics", free_port()
    metrics_dir.mkdir()
    with django_db_blocker.unblock():
        process = start_celery_worker(private_storage / "worker.log", extra_env={
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PORTAL_METRICS_BIND": f"127.0.0.1:{metrics_port}",
            "PORTAL_METRICS_TOKEN": WORKER_METRICS_TOKEN})
    process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    yield process
    stop_celery_worker(process)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout=180, interval=0.5, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}")


@pytest.fixture
def queued_scans(clinician, patient, monkeypatch):
    """make(n): n different scans (make(n, seed): n copies of one film) accepted through the
    service and left queued, oldest first. Their messages are not sent, even in a test that
    commits: the test claims or analyses them itself, and in the PostgreSQL + Redis pass an
    inference worker another test started would otherwise take them first (seen in a CI rehearsal)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from diagnosis import scan_intake
    from tests.images import png_bytes

    monkeypatch.setattr(scan_intake.lifecycle, "enqueue_on_commit", lambda *jobs: None)

    def make(n, seed=None):  # a seed: n copies of one film
        files = [SimpleUploadedFile(f"{i}.png", png_bytes(seed=i if seed is None else seed)) for i in range(n)]
        scans = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=files)
        return sorted(scans, key=lambda scan: scan.uploaded_at)

    return make


@pytest.fixture
def clinician_scan(queued_scans):
    """One scan accepted through the service, left queued (see queued_scans)."""
    (scan,) = queued_scans(1)
    return scan


@pytest.fixture(scope="session")
def tiny_model_artifact(tmp_path_factory):
    """A small Xception trained once per session by the project's own training code on generated images."""
    from ml.engine import TrainConfig, make_synthetic_dataset, train

    root = tmp_path_factory.mktemp("tiny-model")
    make_synthetic_dataset(root / "data", n_per_class=12, image_size=96, seed=3)
    return train(root / "data", root / "artifact", TrainConfig.demo(epochs=2))


@pytest.fixture(scope="session")
def tiny_model_export(tiny_model_artifact, tmp_path_factory):
    """The tiny model's OpenVINO serving export, made once per session by the engine: the
    SavedModel-to-IR conversion takes tens of seconds, the same files for every version of it."""
    from ml.engine import export_serving_model

    folder = tmp_path_factory.mktemp("tiny-model-export") / "export"
    export_serving_model(tiny_model_artifact.artifact_path, folder, expected_sha256=tiny_model_artifact.record["sha256"])
    return folder


@pytest.fixture
def active_model_version(db, tiny_model_artifact):
    from ml import services

    version = services.register_version(artifact_path=tiny_model_artifact.artifact_path, record=tiny_model_artifact.record)
    services.promote_version(version.pk, reason="test fixture: a tiny model, never evaluated", override=True)
    version.refresh_from_db()
    return version


@pytest.fixture
def broker_outage():
    """A context in which the web side's Celery client points at a closed port, as if the broker had died."""
    from contextlib import contextmanager

    from portal.celery import app

    def connect_to(url):
        # Celery prefers the CELERY_BROKER_URL environment variable over its configuration.
        os.environ["CELERY_BROKER_URL"] = url
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    @contextmanager
    def outage():
        original_setting, original_environment = app.conf.broker_url, os.environ.get("CELERY_BROKER_URL")
        connect_to("redis://127.0.0.1:9/0")
        try:
            yield
        finally:
            connect_to(original_setting)
            if original_environment is None:
                del os.environ["CELERY_BROKER_URL"]

    return outage
