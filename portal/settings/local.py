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


def _not_routine(record):
    return "Sending due task" not in record.getMessage()


# `make run` prints the address and the first password last; the minute-by-minute job sweep and
# each task's received/succeeded lines would scroll them away. Warnings and errors still show.
LOGGING["filters"] = {"not_routine": {"()": "django.utils.log.CallbackFilter", "callback": _not_routine}}  # noqa: F405
LOGGING["handlers"]["console"]["filters"] = ["not_routine"]  # noqa: F405
LOGGING["loggers"].update({name: {"level": "WARNING"} for name in ("celery.app.trace", "celery.worker.strategy", "axes.apps")})  # noqa: F405
