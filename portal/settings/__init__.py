"""Settings for each way the portal runs: `local` (make run, the default of manage.py, wsgi and
Celery), `production` (docker-compose), `test` (pytest). `base` holds what they share."""
