"""/healthz and /readyz, for load balancers, orchestrators and docker-compose. Neither needs a login
nor shows anything about a patient; neither writes an audit row.

/healthz: the process answers (restart it if not); it touches nothing else, so a database outage
does not get every web server restarted. /readyz: the database, the broker and the object store
answer (send this server traffic only then); 503 names what does not. What went wrong in detail is
logged, not shown: the answer is public, and an error text may hold a host name."""
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)

# A key no file is ever stored under: asking whether it exists proves the store answers.
PROBE_KEY = "readyz-probe/absent"


@login_not_required
@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


def database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def broker():
    from .celery import app

    with app.connection_for_write() as broker_connection:
        # One try and no pause (kombu would wait 2 s before a retry): a probe must answer at once.
        broker_connection.ensure_connection(max_retries=0, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)


# What each storage holds, for the sentence of a 503; another alias is named as itself.
STORAGE_PARTS = {"scans": "films and heatmaps", "models": "models"}


class StoragesDown(Exception):
    def __init__(self, aliases):
        super().__init__(", ".join(aliases))
        self.parts = [STORAGE_PARTS.get(alias, f"storage {alias!r}") for alias in aliases]


def probe_storage(alias):
    """A folder that exists, or a bucket the credentials may read (django-storages' S3 backend:
    HeadBucket, which a missing bucket fails, where asking for a missing key would only say False)."""
    storage = storages[alias]
    if isinstance(storage, FileSystemStorage):
        if not storage.exists(""):
            raise FileNotFoundError(f"the folder of storage {alias!r} does not exist")
    elif hasattr(storage, "bucket_name") and hasattr(storage, "connection"):
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    else:
        storage.exists(PROBE_KEY)


def object_store():
    """Every storage of READINESS_STORAGES answers (by default "scans" and "models", the ones
    uploads, workers and the film views use); StoragesDown names those that do not."""
    down = []
    for alias in settings.READINESS_STORAGES:
        try:
            probe_storage(alias)
        except Exception as error:  # whatever a client library raises, that storage is down
            logger.warning("Readiness: storage %r does not answer: %s", alias, error)
            down.append(alias)
    if down:
        raise StoragesDown(down)


CHECKS = {"database": database, "broker": broker, "object_store": object_store}
NAMES = {"database": "the database", "broker": "the broker", "object_store": "the object store"}


def part_name(name, error):
    if isinstance(error, StoragesDown):
        return f"{NAMES[name]} ({', '.join(error.parts)})"
    return NAMES[name]


@login_not_required
@never_cache
def readyz(request):
    results, down = {}, []
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:  # whatever a client library raises, the answer is the same: down
            logger.warning("Readiness: %s does not answer: %s", NAMES[name], error)
            results[name] = "down"
            down.append(part_name(name, error))
    if not down:
        return JsonResponse({"status": "ready", "checks": results})
    sentence = f"Not ready: {' and '.join(down)} {'does' if len(down) == 1 else 'do'} not answer."
    return JsonResponse({"status": "not ready", "checks": results, "error": sentence}, status=503)
