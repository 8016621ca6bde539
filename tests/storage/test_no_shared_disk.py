"""Hosts that share nothing but the services: a web server (gunicorn) and two inference workers,
each with a data folder of its own and, where `unshare` works, in a mount namespace of its own in
which the test session's folders (the scan folder, the model the fixtures trained, the other
processes' folders) are hidden under an empty tmpfs. They talk only through PostgreSQL, Redis and
a SeaweedFS bucket: N uploads give N predictions exactly once, the web server serves films and
heatmaps from the bucket, and a worker killed mid-scan has its scan re-run by the other within a
minute."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.test import Client

from diagnosis.models import Scan
from jobs import lifecycle
from tests.conftest import CELERY, PROJECT_ROOT, database_url, stop_celery_worker, wait_for
from tests.images import png_bytes
from tests.seaweedfs import WEED_ABSENT, SeaweedFS, weed_binary

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

UPLOADS = 6


def _needs_services():
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") or settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip("hosts that share no disk need a database and a broker server (CI's PostgreSQL + Redis pass)")
    if weed_binary() is None:
        pytest.skip(WEED_ABSENT)


def _unshare_works():
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture
def bucket(object_store, tmp_path, settings):
    """The session's SeaweedFS when it runs on one, else one of this test's own."""
    _needs_services()
    if object_store is not None:
        yield object_store
        return
    from django.test.utils import override_settings

    store = SeaweedFS(tmp_path / "seaweedfs").start()
    with override_settings(**store.settings()):
        yield store
    store.stop()


class Host:
    """One process on a 'host' of its own: its data folder, and what it sees of the disk."""

    def __init__(self, name, command, hidden, store, logs):
        self.name = name
        self.data = hidden / "hosts" / name  # inside the hidden folder: only this process sees it
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("PORTAL_", "AWS_"))},
            **store.environment(),
            "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"], "DATABASE_URL": database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "PORTAL_DATA_DIR": str(self.data), "PYTHONUNBUFFERED": "1",
        }
        # Opened here, before the namespace hides the folder: the process writes through this descriptor.
        self.log_path = logs / f"{name}.log"
        if _unshare_works():
            # A tmpfs over the session's folders: the scans, the model the fixtures trained, the other hosts.
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       'mount -t tmpfs -o size=1g tmpfs "$0" && mkdir -p "$PORTAL_DATA_DIR" && exec "$@"', str(hidden), *command]
        else:
            self.data.mkdir(parents=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, text, timeout=180):
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.3)

    def pids(self):
        found = subprocess.run(["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True).stdout.split()
        return {int(pid) for pid in found}

    def kill(self):
        """As a host lost: the process and its children, without any cleanup."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_web_and_two_workers_sharing_no_disk_answer_every_upload_once_and_survive_a_killed_worker(
        bucket, clinician, patient, active_model_version, tmp_path_factory, tmp_path):
    hidden = tmp_path_factory.getbasetemp()  # every folder of this test session
    subprocess.run([*CELERY, "purge", "-f", "-Q", "inference"], env={**os.environ, "DATABASE_URL": database_url()}, cwd=PROJECT_ROOT,
                   capture_output=True, timeout=60)
    port = _free_port()
    hosts = []
    try:
        web = Host("web", [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"], hidden, bucket, tmp_path)
        hosts.append(web)
        workers = [Host(f"worker-{i}", [*CELERY, "worker", "--queues", "inference", "--concurrency", "1", "--without-mingle", "--without-gossip",
                                        "--loglevel", "INFO", "--hostname", f"no-shared-disk-{i}@%h"], hidden, bucket, tmp_path)
                   for i in (1, 2)]
        hosts += workers
        web.wait_for_line("Listening at")
        for worker in workers:
            worker.wait_for_line(" ready.")

        browser = requests.Session()
        signed_in = Client()
        signed_in.force_login(clinician)  # a database session: the web server on its own host reads it from PostgreSQL
        browser.cookies.set(settings.SESSION_COOKIE_NAME, signed_in.cookies[settings.SESSION_COOKIE_NAME].value)
        base = f"http://127.0.0.1:{port}"
        upload_page = browser.get(f"{base}/patients/{patient.pk}/")
        assert upload_page.status_code == 200
        csrf = browser.cookies.get("csrftoken")
        doomed = workers[0]
        for i in range(UPLOADS):
            sent = browser.post(f"{base}/patients/{patient.pk}/scans/", files={"images": (f"{i}.png", png_bytes(seed=100 + i), "image/png")},
                                data={"csrfmiddlewaretoken": csrf}, headers={"Accept": "application/json", "Referer": base + "/"})
            assert sent.status_code == 200, sent.text
        # A fresh worker spends seconds fetching and loading the model for its first scan: kill one then.
        running_on_doomed = wait_for(lambda: Scan.objects.filter(status=Scan.Status.RUNNING, worker__regex=r":(%s)$" % "|".join(map(str, doomed.pids()))).first(),
                                     timeout=120, interval=0.05, message="the first worker to start a scan")
        doomed_pids = doomed.pids()
        doomed.kill()
        killed_at = time.monotonic()

        settings.JOB_HEARTBEAT_TIMEOUT = timedelta(seconds=5)  # beat's sweep, run here: a silent worker is noticed sooner

        def all_finished():
            lifecycle.sweep()
            scans = list(Scan.objects.filter(patient=patient))
            return scans if all(scan.status in (Scan.Status.DONE, Scan.Status.FAILED) for scan in scans) else None

        scans = wait_for(all_finished, timeout=60, interval=1, message="every scan to be answered, the killed worker's by the other")
        assert time.monotonic() - killed_at < 60
        assert len(scans) == UPLOADS
        for scan in scans:
            assert scan.status == Scan.Status.DONE, scan.failure_reason
            assert scan.predictions.count() == 1, "each upload answered exactly once"
        redone = Scan.objects.get(pk=running_on_doomed.pk)
        assert redone.attempts == 2 and not redone.worker.endswith(tuple(f":{pid}" for pid in doomed_pids))

        keys = set(bucket.keys("scans/"))
        for scan in scans:
            prediction = scan.predictions.get()
            assert {f"scans/{scan.stored_name}", f"scans/{prediction.heatmap_name}"} <= keys
            film = browser.get(f"{base}/scans/{scan.pk}/image.png")
            heatmap = browser.get(f"{base}/scans/{scan.pk}/heatmaps/{prediction.pk}.png")
            assert film.status_code == heatmap.status_code == 200 and film.content[:4] == heatmap.content[:4] == b"\x89PNG"
        if _unshare_works():
            assert not (hidden / "hosts").exists(), "each host's folder lived on its own tmpfs, seen by no other process"
    finally:
        for host in hosts:
            stop_celery_worker(host.process)  # SIGTERM to its process group, then SIGKILL
