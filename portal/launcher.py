"""`make run`: set the portal up, start its processes, and say last where and how to sign in.

    python -m portal.launcher            # what `make run` runs (bin/portal run)

1. `bin/portal setup`. On the first run it creates the administrator and hands its one-time
   password to this process through a pipe (PORTAL_CREDENTIALS_FD), never a file or the log.
2. `bin/portal web`, `inference-worker`, `pacs-worker`, `training-worker`, `beat` and `dicom-listener`, each in a process group of
   its own (with its children: gunicorn's and Celery's pool processes), each line of their output
   prefixed with the process's name.
3. Once the web server listens and every worker said it is ready, a framed box, printed last: the
   address from PORTAL_BIND, the administrator's password on the first run, how to stop.
4. Ctrl-C (SIGINT), SIGTERM, SIGHUP, or any of the processes ending: SIGTERM to each process, then
   SIGKILL to every group where anything still runs STOP_GRACE_SECONDS later (a worker busy in
   TensorFlow may not answer SIGTERM), so nothing is left behind.

Standard library only: it supervises the processes and imports nothing of Django.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The entry points it runs; a test gives stand-ins that behave like them (tests/portal/test_launcher.py).
ENTRY = os.environ.get("PORTAL_LAUNCHER_ENTRY", str(ROOT / "bin" / "portal"))
DEFAULT_BIND = "127.0.0.1:8000"
STOP_GRACE_SECONDS = float(os.environ.get("PORTAL_STOP_GRACE_SECONDS", 10))
READY_TIMEOUT_SECONDS = 180
# What each process writes once it serves: gunicorn's "Listening at", Celery's "<name> ready.",
# beat's "beat: Starting...", the DICOM listener's "DICOM listener ready" (on loopback unless
# PORTAL_DICOM_HOST says otherwise; with no node registered it accepts nobody).
PROCESSES = {
    "web": "Listening at:",
    "inference-worker": " ready.",
    "pacs-worker": " ready.",
    "training-worker": " ready.",
    "beat": "beat: Starting",
    "dicom-listener": "DICOM listener ready",
}
QUIET_ENVIRONMENT = {
    # TensorFlow's C++ start-up chatter (oneDNN, CPU features): errors only.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",  # lines reach the terminal as they are written, not in 8 kB blocks
}


def address(bind):
    """The URL a person types for a gunicorn bind: 0.0.0.0 and [::] listen everywhere, so say localhost."""
    if bind.startswith("unix:"):
        return bind
    host, _, port = bind.rpartition(":")
    if not host:
        host, port = bind, "8000"
    if host in ("0.0.0.0", "[::]", ""):
        host = "localhost"
    return f"http://{host}:{port}"


def frame(lines):
    """The lines inside a box of '#' a reader cannot miss."""
    width = max(len(line) for line in lines) + 4
    border = "#" * (width + 2)
    return "\n".join([border, *(f"#  {line.ljust(width - 4)}  #" for line in lines), border])


def banner(bind, credentials):
    lines = ["The chest X-ray portal is running.", "", f"Open {address(bind)} and sign in."]
    if credentials:
        username, password = credentials
        lines += ["", "First administrator (this password is shown only once):", f"  username: {username}", f"  password: {password}"]
    lines += ["", "Lost the password? .venv/bin/python manage.py changepassword admin", "Ctrl-C stops the web server and every worker."]
    return frame(lines)


def run_setup(environment):
    """`bin/portal setup`; returns (username, password) when it created the first administrator."""
    read_end, write_end = os.pipe()
    try:
        setup = subprocess.Popen([ENTRY, "setup"], env={**environment, "PORTAL_CREDENTIALS_FD": str(write_end)}, pass_fds=[write_end])
    finally:
        os.close(write_end)
    with os.fdopen(read_end) as handed_over:
        credentials = handed_over.read().split()
    if setup.wait() != 0:
        raise SystemExit(f"Setup failed (exit status {setup.returncode}); nothing was started.")
    return tuple(credentials[:2]) if len(credentials) >= 2 else None


class Supervisor:
    def __init__(self, environment):
        self.environment = environment
        self.processes = {}
        self.ready = {name: threading.Event() for name in PROCESSES}
        self.output_lock = threading.Lock()
        self.stopping = threading.Event()

    def say(self, line):
        with self.output_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def start(self):
        width = max(map(len, PROCESSES))
        for name, ready_mark in PROCESSES.items():
            process = subprocess.Popen(
                [ENTRY, name], env=self.environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, text=True, errors="replace",
            )
            self.processes[name] = process
            threading.Thread(target=self._relay, args=(name.ljust(width), process, ready_mark, self.ready[name]), daemon=True).start()

    def _relay(self, label, process, ready_mark, ready):
        for line in process.stdout:
            self.say(f"{label} | {line.rstrip()}")
            if not ready.is_set() and ready_mark in line:
                ready.set()

    def wait_until_ready(self):
        """True once every process said it serves; False if one ended first or the time ran out."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self.stopping.is_set():
            if self.exited():
                return False
            if all(event.is_set() for event in self.ready.values()):
                return True
            time.sleep(0.2)
        return False

    def exited(self):
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def stop(self):
        """SIGTERM to each process (gunicorn and Celery then stop their own children, cleanly), then
        SIGKILL to every process group where anything remains after the grace period."""
        self.stopping.set()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and self._still_running():
            time.sleep(0.1)
        for name in self._still_running():
            self.say(f"{name} did not stop within {STOP_GRACE_SECONDS:g} s of SIGTERM; killing it (SIGKILL).")
            try:
                os.killpg(self.processes[name].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in self.processes.values():
            process.wait()

    def _still_running(self):
        return [name for name, process in self.processes.items() if self._group_alive(process)]

    @staticmethod
    def _group_alive(process):
        process.poll()  # reaps the leader once it exits, so a zombie does not count as alive
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def main():
    environment = {**os.environ, **{name: os.environ.get(name, value) for name, value in QUIET_ENVIRONMENT.items()}}
    bind = environment.get("PORTAL_BIND", DEFAULT_BIND)
    try:
        credentials = run_setup(environment)
    except KeyboardInterrupt:  # Ctrl-C reached setup too (same terminal), which stops by itself
        print("\nSetup interrupted; nothing was started.")
        return 130
    supervisor = Supervisor(environment)

    def on_signal(signal_number, frame):
        supervisor.stopping.set()

    for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, on_signal)
    supervisor.start()
    exit_status = 0
    try:
        if supervisor.wait_until_ready():
            supervisor.say("\n" + banner(bind, credentials) + "\n")
        elif not supervisor.stopping.is_set():
            not_ready = [name for name, event in supervisor.ready.items() if not event.is_set()]
            supervisor.say(f"\nNot started: {', '.join(not_ready)} (see the lines above). Stopping the others.")
            exit_status = 1
        while not supervisor.stopping.is_set():
            ended = supervisor.exited()
            if ended:
                supervisor.say(f"\n{', '.join(ended)} stopped; stopping the others.")
                exit_status = 1
                break
            supervisor.stopping.wait(0.5)
    finally:
        supervisor.say("Stopping the portal...")
        supervisor.stop()
    return exit_status


if __name__ == "__main__":
    sys.exit(main())
