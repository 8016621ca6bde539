"""PORTAL_LOG_FORMAT=json: one JSON object per line (python-json-logger) with the time, level,
logger and message of each record, and the traceback when there is one. Django's loggers get it
from LOGGING (portal/settings/observability.py), gunicorn's from portal.access_log."""
from pythonjsonlogger.json import JsonFormatter

FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


def json_formatter():
    return JsonFormatter(FIELDS, rename_fields=NAMES, timestamp=False)
