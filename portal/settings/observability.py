"""What operators watch once the portal runs on more than one machine (imported by base): the log
format, the Prometheus metrics' token and a worker's metrics address, and which storages /readyz
asks. docs/deploy.md says how to use them."""
import environ

env = environ.Env()

# "plain" (a line of text) or "json": one JSON object per line with time, level, logger and message,
# for a log collector. gunicorn's own lines follow it too (portal.access_log).
PORTAL_LOG_FORMAT = env.str("PORTAL_LOG_FORMAT", default="plain")
if PORTAL_LOG_FORMAT not in ("plain", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"PORTAL_LOG_FORMAT is {PORTAL_LOG_FORMAT!r}; it may be plain or json.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "portal.log_format.json_formatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": PORTAL_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("PORTAL_LOG_LEVEL", default="INFO")},
    # TensorFlow and Keras log their start-up and tracing warnings through absl: errors only.
    "loggers": {name: {"level": "ERROR"} for name in ("absl", "tensorflow")},
}

# /metrics answers only a request that carries `Authorization: Bearer <this token>`; without a token
# set it answers 404, as if it did not exist. A token rather than a list of allowed networks: behind
# the TLS proxy every request comes from the proxy's address, so an address rule would let anyone in.
METRICS_TOKEN = env.str("PORTAL_METRICS_TOKEN", default="")
# A worker or the DICOM listener has no web server: set host:port (e.g. 0.0.0.0:9100) and it serves
# its own metrics there, behind the same token. Empty: it serves none.
METRICS_BIND = env.str("PORTAL_METRICS_BIND", default="")
# The storages (aliases of STORAGES) whose answer /readyz needs, besides the database and the broker:
# the ones that hold films, heatmaps and models ("default" holds nothing the portal reads).
READINESS_STORAGES = env.list("PORTAL_READINESS_STORAGES", default=["scans", "models"])
