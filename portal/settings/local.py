"""`make run` on a laptop: SQLite and a broker kept in folders unless DATABASE_URL or
CELERY_BROKER_URL say otherwise, and the secret key `bin/portal setup` wrote into the data folder."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY_FILE, env


def _secret_key():
    if env.str("DJANGO_SECRET_KEY", default=""):
        return env.str("DJANGO_SECRET_KEY")
    if SECRET_KEY_FILE.is_file():
        return SECRET_KEY_FILE.read_text().strip()
    raise ImproperlyConfigured(f"There is no secret key in {SECRET_KEY_FILE}: run `bin/portal setup` to create it, or set DJANGO_SECRET_KEY.")


SECRET_KEY = _secret_key()
