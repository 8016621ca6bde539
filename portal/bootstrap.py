"""Creates what the portal writes into before anything else runs: the data folders and, when
DJANGO_SECRET_KEY is not set, the local secret key file. `bin/portal setup` runs it ahead of
manage.py, and the test session calls create_folders(); the settings themselves only read.

    python -m portal.bootstrap
"""
import os
import secrets
from pathlib import Path


def portal_folders(settings):
    """Every folder the portal writes into, from the settings in force."""
    folders = [settings.DATA_DIR, settings.SCAN_STORAGE_DIR, settings.MODEL_STORE_DIR, settings.DATASETS_ROOT, settings.STATIC_ROOT]
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        folders += [options["data_folder_in"], options["data_folder_out"], options["processed_folder"], options["control_folder"]]
    return [Path(folder) for folder in folders]


def create_folders(settings):
    for folder in portal_folders(settings):
        folder.mkdir(parents=True, exist_ok=True)


def create_secret_key(key_file):
    """Writes a new random key readable by its owner only; an existing key is kept (sessions survive)."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(50))


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
    # The key first: the local settings refuse to load without one.
    if not os.environ.get("DJANGO_SECRET_KEY"):
        from portal.settings.base import SECRET_KEY_FILE

        create_secret_key(SECRET_KEY_FILE)
    from django.conf import settings

    create_folders(settings)


if __name__ == "__main__":
    main()
