"""Everything the local, production and test settings share. Every value comes from the
environment, with a default that suits a laptop. Importing this module reads the environment and
nothing else: it creates no folder and writes no file (`bin/portal setup` does that)."""
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

DATA_DIR = Path(env.str("PORTAL_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
# Written once by `bin/portal setup` (mode 0600) for runs without DJANGO_SECRET_KEY; never committed.
SECRET_KEY_FILE = DATA_DIR / "secret_key"

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "csp",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rules",
    # The project's own apps, lower layers first (pacs may import diagnosis, never the reverse).
    "jobs", "ml", "diagnosis", "pacs",
]

# Roles are Django permissions from the groups (ModelBackend); which site's records a user may touch
# is the object rule diagnosis.roles registers with django-rules.
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out account before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "rules.permissions.ObjectPermissionBackend",
]

MIDDLEWARE = [
    # First, so that a request's duration counts every layer below (portal.metrics).
    "portal.metrics.RequestLatencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body (CsrfViewMiddleware parses POST): an oversized upload is refused
    # from its Content-Length, never spooled to disk.
    "portal.middleware.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless a view opts out (only the login page and the token API do).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "portal.middleware.NoStoreMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a refused sign-in of a locked-out account into its answer.
    "axes.middleware.AxesMiddleware",
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
            ],
        },
    },
]


def database(url):
    """The Django database settings for a database URL (production.py requires the URL)."""
    config = env.db_url_config(url)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            # WAL lets the web server read while a worker writes; IMMEDIATE avoids upgrade deadlocks.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    else:
        config["CONN_MAX_AGE"] = 60
    return config


SQLITE_PATH = DATA_DIR / "portal.sqlite3"
DATABASES = {"default": database(env.str("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("PORTAL_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "diagnosis:home"
LOGOUT_REDIRECT_URL = "login"

# A shared ward workstation must not stay logged in: 30 minutes without a request ends the session.
SESSION_COOKIE_AGE = env.int("PORTAL_SESSION_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Uploaded X-rays are PHI: outside STATIC_ROOT and any media URL, served only by views (or an S3 bucket: storage.py).
SCAN_STORAGE_DIR = Path(env.str("PORTAL_SCAN_DIR", default=str(DATA_DIR / "scans")))
MODEL_STORE_DIR = Path(env.str("PORTAL_MODEL_DIR", default=str(DATA_DIR / "models")))
DATASETS_ROOT = Path(env.str("PORTAL_DATASETS_ROOT", default=str(DATA_DIR / "datasets")))
SCAN_MAX_UPLOAD_BYTES = env.int("PORTAL_SCAN_MAX_BYTES", default=60 * 1024 * 1024)
SCAN_MAX_PIXELS = env.int("PORTAL_SCAN_MAX_PIXELS", default=40_000_000)
SCAN_MIN_SIDE = env.int("PORTAL_SCAN_MIN_SIDE", default=64)
SCAN_MAX_FILES_PER_UPLOAD = 20
# Form fields and JSON bodies without files never need more than Django's default 2.5 MB; files
# are limited per request below and per file by SCAN_MAX_UPLOAD_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2621440
# The largest body an upload URL accepts (several scans in one form). Checked against Content-Length
# before the body is read: 60 MB x 20 files would let 1.2 GB be spooled to disk before a refusal.
UPLOAD_MAX_REQUEST_BYTES = env.int("PORTAL_UPLOAD_MAX_REQUEST_BYTES", default=256 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Each file is capped at SCAN_MAX_UPLOAD_BYTES while it streams in, before it reaches a temporary file.
FILE_UPLOAD_HANDLERS = [
    "portal.uploads.PerFileSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
DATA_UPLOAD_MAX_NUMBER_FILES = SCAN_MAX_FILES_PER_UPLOAD

# Under a backlog an inference worker claims up to this many queued scans and predicts them in one
# call; a lone scan is never held back to wait for company.
INFERENCE_BATCH_SIZE = env.int("PORTAL_INFERENCE_BATCH_SIZE", default=8)

# Model lifecycle. Every version is evaluated on the same evaluation set so versions compare
# fairly: a class-folder dataset, relative to PORTAL_DATASETS_ROOT or absolute ("" turns it off).
ML_EVALUATION_SET = env.str("PORTAL_EVALUATION_SET", default="evaluation")
# Training jobs start from ImageNet weights; "none" trains from scratch, or give a local weights file.
ML_DEFAULT_WEIGHTS = env.str("PORTAL_DEFAULT_WEIGHTS", default="imagenet")
# Weights files a training job may start from live only in this folder (a path outside it, or a
# link leading out of it, is refused). ImageNet weights are downloaded by Keras from its weights
# host: "true" / "false" says whether this site can reach it; unset, a short connection test
# decides (an ImageNet file already in the Keras cache is always usable).
ML_WEIGHTS_DIR = Path(env.str("PORTAL_WEIGHTS_DIR", default=str(DATA_DIR / "weights")))
ML_IMAGENET_AVAILABLE = env.bool("PORTAL_IMAGENET_AVAILABLE", default=None)
ML_IMAGENET_HOST = ("storage.googleapis.com", 443)
# An external evaluation set (films from institutions the training data never saw), relative to
# PORTAL_DATASETS_ROOT or absolute; "" = none. When set, it is the set promotions are judged on.
ML_EXTERNAL_EVALUATION_SET = env.str("PORTAL_EXTERNAL_EVALUATION_SET", default="")
# What a version must reach before it is promoted without an override (issue 7): AUC with the lung
# fields blanked, counterfactual flip rate, share of heat outside the lungs, calibration error.
ML_SHORTCUT_TARGETS = {"lungs_blanked_auc": 0.60, "flip_rate": 0.05, "heat_outside_lungs": 0.25, "ece": 0.05}
# Films the shortcut report reads per evaluation, and how many of them get a Grad-CAM (~1 s each).
ML_SHORTCUT_FILMS = 200
ML_SHORTCUT_GRADCAM = 24
# A site threshold is fitted only on at least this many reviewed scans of each class.
ML_SITE_THRESHOLD_MIN_PER_CLASS = 20
# The seed that makes a job repeatable, how many images per class a dataset check decodes (the
# rest are identified by their first bytes), and the log lines a job keeps.
ML_TRAINING_SEED = 42
ML_DATASET_CHECK_SAMPLE = 20
ML_TRAINING_LOG_LINES = 200
# Where the training export finds reviewed scans: a path, so that ml never imports diagnosis.
ML_REVIEWED_SCANS_PROVIDER = "diagnosis.selectors.reviewed_scans_for_training"
# Promotions, training jobs and evaluation runs go into the clinical app's audit trail (ml.audit).
ML_AUDIT_RECORDER = "diagnosis.services.record_audit"
# Promotion safeguards on each live site's blind-read films (diagnosis.site_remeasure), by path too.
ML_SITE_CONCERNS_PROVIDER = "diagnosis.site_remeasure.promotion_concerns"

# One lifecycle for background work (scan inference, training, evaluation): a running job beats
# every JOB_HEARTBEAT_SECONDS; one silent for JOB_HEARTBEAT_TIMEOUT lost its worker, one queued
# for JOB_REQUEUE_AFTER is sent to the broker again (it may have been down), and a job is tried
# at most JOB_MAX_ATTEMPTS times before it fails with a reason instead of looping.
JOB_HEARTBEAT_SECONDS = 5
JOB_HEARTBEAT_TIMEOUT = timedelta(seconds=env.int("PORTAL_JOB_HEARTBEAT_TIMEOUT", default=60))
JOB_REQUEUE_AFTER = timedelta(seconds=env.int("PORTAL_JOB_REQUEUE_SECONDS", default=120))
JOB_MAX_ATTEMPTS = 2

# Celery: JSON only, late acks so a task whose worker dies is redelivered, one task prefetched.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")  # with no host kombu warns on every send
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # `bin/portal setup` (portal.bootstrap) creates these folders.
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
# Celery's Django fixup closes a worker's database connection around every task unless told to
# reuse it, and a new PostgreSQL connection cost ~5 ms, more than the task of a message whose scan
# was already claimed in a batch. portal/celery.py closes it when Django would (CONN_MAX_AGE, errors).
CELERY_DB_REUSE_MAX = 10_000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An upload must not hang when the broker is down: fail fast, the sweep sends the scan later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_DEFAULT_QUEUE = "inference"
CELERY_TASK_ROUTES = {
    "diagnosis.tasks.*": {"queue": "inference"},
    "ml.tasks.*": {"queue": "training"},
    "jobs.tasks.*": {"queue": "inference"},
    "pacs.tasks.*": {"queue": "pacs"},
}
CELERY_BEAT_SCHEDULE = {"sweep-jobs": {"task": "jobs.tasks.sweep_jobs", "schedule": 30.0}}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "diagnosis.api.errors.exception_handler",
    # Reverse proxies in front of the web server, each appending its peer to X-Forwarded-For: the
    # address the outermost one saw is the client's, for the throttles and the audit trail alike
    # (ml.audit.client_ip). 0: REMOTE_ADDR, and the header, which any client can write, is ignored.
    "NUM_PROXIES": env.int("PORTAL_PROXY_COUNT", default=0),
    # Throttles count in the default cache (PORTAL_CACHE_URL: shared by every web process on Redis).
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle", "rest_framework.throttling.UserRateThrottle", "rest_framework.throttling.ScopedRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("PORTAL_API_ANON_RATE", default="60/minute"),
        "user": env.str("PORTAL_API_USER_RATE", default="1200/minute"),
        # Asking for a token with a password; django-axes also locks the account after failures.
        "token": env.str("PORTAL_API_TOKEN_RATE", default="10/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chest X-ray portal API",
    "DESCRIPTION": "Submit chest X-rays and read AI-assisted results. Results support, never replace, a clinician's reading.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema describes every patient field: only signed-in users (session or token) may read it.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The docs page's Swagger UI from the portal's own static files, its script a separate file:
    # the Content-Security-Policy allows neither a CDN nor inline scripts.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# Caches, API tokens, sign-in lockout, the Content-Security-Policy; the DICOM listener; STORAGES;
# logging, metrics and readiness (portal/settings/observability.py).
from .security import *  # noqa: E402, F403
from .dicom import *  # noqa: E402, F403
from .storage import *  # noqa: E402, F403
from .sites import *  # noqa: E402, F403
from .observability import *  # noqa: E402, F403
