"""The settings only read the environment; `bin/portal setup` (portal.bootstrap) makes the folders
and the local secret key. Each check runs in a fresh Python process, as the portal's processes do,
with a data folder of its own and none of the test session's settings variables."""
import os
import secrets
import stat
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

SETTINGS_VARIABLES = ("DJANGO_", "PORTAL_", "DATABASE_URL", "CELERY_BROKER_URL")
PRODUCTION_LIKE = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://portal:secret@db.example.org:5432/portal",
    "CELERY_BROKER_URL": "redis://redis.example.org:6379/0",
    "DJANGO_ALLOWED_HOSTS": "portal.example.org,localhost",
    "DJANGO_BEHIND_TLS_PROXY": "true",
}


def run_python(args, cwd, **variables):
    """Run `python ARGS` in the project with only the given settings variables set."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(SETTINGS_VARIABLES)}
    env.update(PYTHONPATH=str(PROJECT_ROOT), PYTHONDONTWRITEBYTECODE="1", **variables)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def show_setting(name, cwd, **variables):
    code = f"from django.conf import settings; print(settings.{name})"
    return run_python(["-c", code], cwd, **variables)


@pytest.mark.parametrize(
    "module, variables",
    [
        ("portal.settings.base", {}),
        ("portal.settings.local", {"DJANGO_SECRET_KEY": "set-so-that-no-key-file-is-needed"}),
        ("portal.settings.test", {}),
        ("portal.settings.production", PRODUCTION_LIKE),
    ],
)
def test_importing_the_settings_writes_nothing(tmp_path, module, variables):
    # The data folder does not exist yet, the broker is the filesystem one (its folders used to be
    # made on import), and the process runs in tmp_path: whatever it wrote would show up there.
    variables = {**variables, "PORTAL_DATA_DIR": str(tmp_path / "data")}
    variables.pop("CELERY_BROKER_URL", None)
    result = run_python(["-c", f"import {module}"], tmp_path, **variables)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_local_settings_without_a_key_say_to_run_setup(tmp_path):
    result = show_setting("SECRET_KEY", tmp_path, PORTAL_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="portal.settings.local")
    assert result.returncode != 0
    assert "ImproperlyConfigured: There is no secret key" in result.stderr
    assert "run `bin/portal setup`" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr


def test_setup_creates_the_data_and_broker_folders(tmp_path):
    data = tmp_path / "data"
    result = run_python(["-m", "portal.bootstrap"], tmp_path, PORTAL_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    for folder in ("scans", "models", "datasets", "staticfiles", "broker/queue", "broker/processed", "broker/control"):
        assert (data / folder).is_dir(), folder


def test_the_default_broker_sends_without_kombus_no_hostname_warning(tmp_path):
    """`make run` logged "No hostname was supplied" on every upload: the default broker URL names its host."""
    code = "import django; django.setup(); from django.conf import settings; from kombu import Connection; print(Connection(settings.CELERY_BROKER_URL).hostname)"
    result = run_python(["-c", code], tmp_path, PORTAL_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="portal.settings.test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "localhost", "kombu warns whenever the URL has no host (kombu.connection)"


def test_setup_writes_a_private_key_that_the_local_settings_use(tmp_path):
    data = tmp_path / "data"
    run_python(["-m", "portal.bootstrap"], tmp_path, PORTAL_DATA_DIR=str(data))
    key_file = data / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    result = show_setting("SECRET_KEY", tmp_path, PORTAL_DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="portal.settings.local")
    assert result.stdout.strip() == key_file.read_text() and len(key_file.read_text()) >= 50


def test_setup_run_again_keeps_the_key(tmp_path):
    data = tmp_path / "data"
    run_python(["-m", "portal.bootstrap"], tmp_path, PORTAL_DATA_DIR=str(data))
    first_key = (data / "secret_key").read_text()
    run_python(["-m", "portal.bootstrap"], tmp_path, PORTAL_DATA_DIR=str(data))
    assert (data / "secret_key").read_text() == first_key


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL"])
def test_production_settings_refuse_to_start_without(tmp_path, missing):
    variables = {name: value for name, value in PRODUCTION_LIKE.items() if name != missing}
    result = show_setting("DEBUG", tmp_path, DJANGO_SETTINGS_MODULE="portal.settings.production", **variables)
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


def test_production_settings_pass_the_deployment_checklist(tmp_path):
    result = run_python(
        [str(PROJECT_ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path, DJANGO_SETTINGS_MODULE="portal.settings.production", PORTAL_DATA_DIR=str(tmp_path / "data"), **PRODUCTION_LIKE,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_test_settings_use_the_database_and_broker_the_environment_names(tmp_path):
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"
    result = run_python(
        ["-c", code], tmp_path, DJANGO_SETTINGS_MODULE="portal.settings.test",
        DATABASE_URL=PRODUCTION_LIKE["DATABASE_URL"], CELERY_BROKER_URL=PRODUCTION_LIKE["CELERY_BROKER_URL"],
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", PRODUCTION_LIKE["CELERY_BROKER_URL"]]
