"""PORTAL_LOG_FORMAT=json: every line the portal's processes log is one JSON object with time, level,
logger and message: Django's loggers (a fresh process with the settings) and gunicorn's own lines
(a real `bin/portal web`), whose access line still hides a set-password link's token."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import PROJECT_ROOT, free_port, worker_environment
from tests.portal.test_settings import run_python

LOG_SOME_LINES = """
import django, logging
django.setup()
logging.getLogger("diagnosis.inference").warning("Scan %s waited %d s", "abc", 3)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("jobs.lifecycle").exception("It broke")
"""


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_django_logs_one_json_object_per_line(tmp_path):
    result = run_python(["-c", LOG_SOME_LINES], tmp_path, DJANGO_SETTINGS_MODULE="portal.settings.test", PORTAL_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    warning, error = [line for line in json_lines(result.stderr) if line["logger"] in ("diagnosis.inference", "jobs.lifecycle")]
    assert warning["message"] == "Scan abc waited 3 s" and warning["level"] == "WARNING" and warning["time"]
    assert error["level"] == "ERROR" and "ZeroDivisionError" in error["exc_info"]


def test_plain_stays_the_default(tmp_path):
    result = run_python(["-c", LOG_SOME_LINES], tmp_path, DJANGO_SETTINGS_MODULE="portal.settings.test")
    assert "WARNING diagnosis.inference: Scan abc waited 3 s" in result.stderr


def test_an_unknown_log_format_is_refused_with_a_sentence(tmp_path):
    result = run_python(["-c", LOG_SOME_LINES], tmp_path, DJANGO_SETTINGS_MODULE="portal.settings.test", PORTAL_LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "PORTAL_LOG_FORMAT is 'xml'; it may be plain or json." in result.stderr


def test_gunicorn_logs_json_and_still_hides_set_password_tokens(db, tmp_path):
    port = free_port()
    env = {**worker_environment(), "PORTAL_LOG_FORMAT": "json", "PORTAL_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1",
           "PORTAL_PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        web = subprocess.Popen([str(PROJECT_ROOT / "bin" / "portal"), "web"], env=env, stdout=out, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
                break
            except OSError:  # not listening yet, or its worker still importing Django on a loaded machine
                if web.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{(tmp_path / 'err').read_text()[-3000:]}")
                time.sleep(0.3)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/set-password/MQ/secret-link-token-123/", timeout=60).read()
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
    access = json_lines((tmp_path / "out").read_text())
    errors = json_lines((tmp_path / "err").read_text())
    assert any("GET /healthz" in line["message"] and line["logger"] == "gunicorn.access" for line in access)
    link = [line for line in access if "/accounts/set-password/" in line["message"]]
    assert link and "/accounts/set-password/MQ/<token>/" in link[0]["message"]
    assert "secret-link-token-123" not in (tmp_path / "out").read_text() + (tmp_path / "err").read_text()
    assert any(line["logger"] == "gunicorn.error" and line["level"] == "INFO" for line in errors)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in access + errors)
