"""Settings come from the environment; with none set, the portal runs on SQLite and a broker
kept in local folders, so a newcomer needs no server. Production sets DATABASE_URL (PostgreSQL)
and CELERY_BROKER_URL (Redis)."""
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("PORTAL_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name, default=False):
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key():
    if os.environ.get("DJANGO_SECRET_KEY"):
        return os.environ["DJANGO_SECRET_KEY"]
    # Local runs keep a generated key on disk so sessions survive restarts; never committed.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "jobs",
    "ml",
    "diagnosis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless a view opts out (only the login page and the token API do).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "diagnosis.context_processors.roles",
            ],
        },
    },
]

SQLITE_PATH = DATA_DIR / "portal.sqlite3"
DATABASES = {
    "default": dj_database_url.config(default=f"sqlite:///{SQLITE_PATH}", conn_max_age=60),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while a worker writes; IMMEDIATE avoids upgrade deadlocks.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that a Celery worker process started by the tests shares it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_portal.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = os.environ.get("PORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "diagnosis:patient_list"
LOGOUT_REDIRECT_URL = "login"

# A shared ward workstation must not stay logged in: 30 minutes without a request ends the session.
SESSION_COOKIE_AGE = int(os.environ.get("PORTAL_SESSION_SECONDS", 30 * 60))
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY") else None

# Uploaded X-rays are PHI: they live outside STATIC_ROOT and any media URL, served only by views.
SCAN_STORAGE_DIR = Path(os.environ.get("PORTAL_SCAN_DIR", DATA_DIR / "scans"))
MODEL_STORE_DIR = Path(os.environ.get("PORTAL_MODEL_DIR", DATA_DIR / "models"))
DATASETS_ROOT = Path(os.environ.get("PORTAL_DATASETS_ROOT", DATA_DIR / "datasets"))
SCAN_MAX_UPLOAD_BYTES = int(os.environ.get("PORTAL_SCAN_MAX_BYTES", 60 * 1024 * 1024))
SCAN_MAX_PIXELS = int(os.environ.get("PORTAL_SCAN_MAX_PIXELS", 40_000_000))
SCAN_MIN_SIDE = int(os.environ.get("PORTAL_SCAN_MIN_SIDE", 64))
SCAN_MAX_FILES_PER_UPLOAD = 20
DATA_UPLOAD_MAX_MEMORY_SIZE = SCAN_MAX_UPLOAD_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = SCAN_MAX_FILES_PER_UPLOAD
# Background jobs (scan inference, training, evaluation) share one lifecycle: jobs/lifecycle.py.
# A running job stamps its heartbeat this often; one silent for longer than the timeout lost its
# worker and is run again (up to JOB_MAX_ATTEMPTS attempts in all); a queued job the broker has
# not handed to any worker after JOB_REQUEUE_AFTER is sent again.
JOB_HEARTBEAT_SECONDS = 5
JOB_HEARTBEAT_TIMEOUT = timedelta(seconds=60)
JOB_REQUEUE_AFTER = timedelta(seconds=120)
JOB_MAX_ATTEMPTS = 2

# Model lifecycle. Every version is evaluated on the same evaluation set so versions compare
# fairly: a class-folder dataset, relative to PORTAL_DATASETS_ROOT or absolute ("" turns it off).
ML_EVALUATION_SET = os.environ.get("PORTAL_EVALUATION_SET", "evaluation")
# Training jobs start from ImageNet weights; "none" trains from scratch, or give a local weights file.
ML_DEFAULT_WEIGHTS = os.environ.get("PORTAL_DEFAULT_WEIGHTS", "imagenet")
# The split seed of a training job that names none.
ML_TRAINING_SEED = 42
# How many log lines of a training job its page shows.
ML_TRAINING_LOG_LINES = 200
# How many images of each class the dataset check decodes fully (the rest: their first bytes).
ML_DATASET_CHECK_SAMPLE = 20
ML_REVIEWED_SCANS_PROVIDER = "diagnosis.selectors.reviewed_scans_for_training"

# Celery: JSON only, late acks so a task whose worker dies is redelivered, one task prefetched.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for folder in ("queue", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # Otherwise kombu writes its exchange table into the current directory.
        "control_folder": str(BROKER_DIR / "control"),
    }
else:
    # Redis redelivers a message not acknowledged within this time (a worker killed outright).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An upload must not hang when the broker is down: fail fast, the sweep sends the scan later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_DEFAULT_QUEUE = "inference"
CELERY_TASK_ROUTES = {
    "diagnosis.tasks.*": {"queue": "inference"},
    "ml.tasks.*": {"queue": "training"},
    "jobs.tasks.*": {"queue": "inference"},
}
CELERY_BEAT_SCHEDULE = {"sweep-jobs": {"task": "jobs.tasks.sweep_jobs", "schedule": 30.0}}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "diagnosis.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chest X-ray portal API",
    "DESCRIPTION": "Submit chest X-rays and read AI-assisted results. Results support, never replace, a clinician's reading.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PORTAL_LOG_LEVEL", "INFO")},
}
