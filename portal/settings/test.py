"""pytest (pytest.ini names this module). The database and the broker still come from
DATABASE_URL and CELERY_BROKER_URL, because CI runs the suite on PostgreSQL + Redis and on
SQLite + the filesystem broker; the Celery workers the tests start inherit this module."""
from .base import *  # noqa: F403
from .base import DATA_DIR, DATABASES

SECRET_KEY = "test-only-secret-key-never-used-outside-the-test-suite"
# Tests create many users; a deliberately slow hasher would only slow them down.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a Celery worker process started by the tests shares it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_portal.sqlite3")}

# The suite never reaches for the internet: ImageNet weights count as unavailable unless cached.
ML_IMAGENET_AVAILABLE = False
