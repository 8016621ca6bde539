"""`make run` (bin/portal run, portal.launcher): the address and the first administrator's password
come last, framed, once every process said it serves; Ctrl-C stops every process it started, even
one that ignores SIGTERM. The launcher runs for real, in its own process; the entry points it
starts are stand-ins that print what the real ones print when ready (starting TensorFlow workers
would take a minute and prove nothing more about the launcher)."""
import os
import signal
import subprocess
import sys
import threading
import time

from django.core.management import call_command

import pytest

from tests.conftest import PROJECT_ROOT, wait_for

PASSWORD = "Xq7-once-only-Pw"
STAND_IN_ENTRY = f"""#!/usr/bin/env bash
echo $$ >> "$STAND_IN_PIDS"
case "$1" in
  setup)
    echo "Applying diagnosis.0001_initial... OK"
    echo "admin {PASSWORD}" >&"$PORTAL_CREDENTIALS_FD"
    echo "Training the demo model..." ;;
  web) echo "[INFO] Listening at: http://$PORTAL_BIND (1)"; exec sleep 600 ;;
  inference-worker)
    # As the issue saw: a worker that does not answer SIGTERM.
    trap '' TERM INT
    echo "inference@host ready."
    while true; do sleep 1; done ;;
  pacs-worker) echo "pacs@host ready."; exec sleep 600 ;;
  training-worker) echo "training@host ready."; exec sleep 600 ;;
  beat) echo "beat: Starting..."; exec sleep 600 ;;
  dicom-listener) echo "INFO pacs.listener: DICOM listener ready: AE title CXR_PORTAL on 127.0.0.1:11112"; exec sleep 600 ;;
esac
"""


@pytest.fixture
def launcher(tmp_path):
    entry = tmp_path / "portal"
    entry.write_text(STAND_IN_ENTRY)
    entry.chmod(0o755)
    pids = tmp_path / "pids"
    env = {**os.environ, "PORTAL_LAUNCHER_ENTRY": str(entry), "STAND_IN_PIDS": str(pids), "PORTAL_BIND": "0.0.0.0:8765",
           "PORTAL_STOP_GRACE_SECONDS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.launcher"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    lines = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    yield process, lines, pids
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def alive(pid):
    try:
        os.killpg(pid, 0)  # the process or any of its group
    except ProcessLookupError:
        return False
    return True


def test_the_password_comes_last_framed_and_ctrl_c_stops_every_process(launcher):
    process, lines, pids = launcher
    wait_for(lambda: any("Ctrl-C stops" in line for line in lines), timeout=60, message="the banner")
    time.sleep(0.5)  # anything printed after the box would show now
    output = [line.rstrip("\n") for line in lines if line.strip()]
    box_top = max(index for index, line in enumerate(output) if set(line) == {"#"} and index < len(output) - 1)
    box = output[box_top:]
    assert set(box[0]) == set(box[-1]) == {"#"} and all(line.startswith("#") and line.endswith("#") for line in box), "the box is the last thing printed"
    text = "\n".join(box)
    assert "http://localhost:8765" in text, "the address comes from PORTAL_BIND"
    assert f"password: {PASSWORD}" in text
    assert sum(PASSWORD in line for line in output) == 1, "the password is printed once, in the box"
    assert any("Applying diagnosis" in line for line in output[:box_top]), "setup's output comes before"
    assert any(line.startswith("inference-worker | inference@host ready.") for line in output), "each line says which process wrote it"
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 7, "setup, web, three workers, beat and the DICOM listener"

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the launcher's process group
    assert process.wait(timeout=30) == 0
    # A killed process's child may linger a moment as a zombie until it is reaped; none may keep running.
    wait_for(lambda: not [pid for pid in started if alive(pid)], timeout=10, interval=0.2,
             message="no process left behind, not even one that ignores SIGTERM")


def test_setup_hands_the_first_password_to_the_launcher_and_not_to_the_log(db, monkeypatch):
    from io import StringIO

    from django.contrib.auth.models import User

    read_end, write_end = os.pipe()
    monkeypatch.setenv("PORTAL_CREDENTIALS_FD", str(write_end))
    log = StringIO()
    call_command("setup_portal", "--no-demo-model", stdout=log)
    with os.fdopen(read_end) as handed_over:
        username, password = handed_over.read().split()
    assert username == "admin" and User.objects.get(username="admin").check_password(password)
    assert password not in log.getvalue() and "shown when the portal is up" in log.getvalue()


def test_setup_creates_its_first_site_in_the_silent_period(db):
    """`make run` and a hospital's first install run the same setup: nobody has checked the model on
    the site's films yet, so its clinicians must not see results until an administrator decides."""
    from io import StringIO

    from diagnosis.models import Site

    log = StringIO()
    call_command("setup_portal", "--no-demo-model", stdout=log)
    assert Site.objects.get().mode == Site.Mode.SILENT and "silent period" in log.getvalue()
