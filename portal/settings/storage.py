"""Where files live (Django's STORAGES): "scans" (films and heatmaps: PHI), "models" (model
artifacts, serving exports, evaluation plots and reports) and "datasets" (reviewed-scan snapshots,
pseudonymous films). Local private folders by default, so `make run` needs nothing; an S3 bucket (AWS S3, MinIO, SeaweedFS) when AWS_STORAGE_BUCKET_NAME is
set, read with django-storages' own setting names so its documentation applies as written. Then web
servers and workers on hosts that share no disk find the same files, and the local folders
(PORTAL_SCAN_DIR, PORTAL_MODEL_DIR) only cache model files on each host."""
import environ

env = environ.Env()

# The local folders: their settings are read at each use (tests move them), see portal.file_storage.
LOCAL_STORAGES = {
    "scans": {"BACKEND": "portal.file_storage.PrivateFolderStorage", "OPTIONS": {"setting": "SCAN_STORAGE_DIR"}},
    "models": {"BACKEND": "portal.file_storage.PrivateFolderStorage", "OPTIONS": {"setting": "MODEL_STORE_DIR"}},
    # Reviewed-scan snapshots (snapshots/<name>/, ml.snapshot_store): pseudonymous films, so PHI too.
    "datasets": {"BACKEND": "portal.file_storage.PrivateFolderStorage", "OPTIONS": {"setting": "DATASETS_ROOT"}},
}


def object_store_settings(*, bucket, endpoint_url="", access_key="", secret_key="", region="", addressing_style=""):
    """The settings that point the portal at one S3 bucket; the test session uses it for SeaweedFS."""
    s3 = "portal.bucket_storage.BucketStorage"  # django-storages' S3Storage with fewer requests per file
    return {
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint_url or None,  # None: AWS itself
        "AWS_ACCESS_KEY_ID": access_key or None,  # None: boto3's own chain (instance role, ~/.aws)
        "AWS_SECRET_ACCESS_KEY": secret_key or None,
        "AWS_S3_REGION_NAME": region or None,
        # MinIO and SeaweedFS answer at endpoint/bucket/key, not at bucket.endpoint/key.
        "AWS_S3_ADDRESSING_STYLE": addressing_style or ("path" if endpoint_url else None),
        "AWS_S3_SIGNATURE_VERSION": "s3v4",
        # A private bucket: objects get no ACL of their own (the bucket's policy decides, and it
        # grants nobody but the portal); no browser ever gets a bucket URL, signed or not: films
        # and heatmaps go through the views that check access and write the audit row.
        "AWS_DEFAULT_ACL": None,
        "AWS_QUERYSTRING_AUTH": True,
        # Names are generated (uuid): checking each for a clash would cost a request per file.
        "AWS_S3_FILE_OVERWRITE": True,
        "AWS_S3_CLIENT_CONFIG": _client_config(),
        "STORAGES": {
            **_static_storages(),
            "scans": {"BACKEND": s3, "OPTIONS": {"location": "scans"}},
            "models": {"BACKEND": s3, "OPTIONS": {"location": "models"}},
            "datasets": {"BACKEND": s3, "OPTIONS": {"location": "datasets"}},
        },
    }


def _client_config():
    """A store that does not answer is said within seconds (an upload gets its 503, a worker
    retries the job later) instead of boto3's minute of retries.

    boto3's checksums are set on, not left to AWS_REQUEST_CHECKSUM_CALCULATION or ~/.aws/config (on
    is its default since botocore 1.36: a CRC32 with each PutObject, checked on each GetObject
    that has one): they are what makes SeaweedFS refuse a body altered on the way (BadDigest);
    it does not check the SHA-256 in the signature (tests/storage/test_bucket_requests.py).
    "when_required" would save 0.2-0.3 ms of a request's 5-8 ms, 5 requests a scan (bench/object_store.py).

    One client serves every thread of a process (portal.bucket_storage.BucketStorage.client): its
    pool keeps a connection for each thread that may call at once (a worker's heatmap writers, one
    per scan of a batch, default 8, and its preparers), where boto3's 10 would open and drop extra ones."""
    from botocore.config import Config

    return Config(connect_timeout=env.float("PORTAL_S3_CONNECT_TIMEOUT", default=3.0), read_timeout=env.float("PORTAL_S3_READ_TIMEOUT", default=30.0),
                  retries={"max_attempts": env.int("PORTAL_S3_ATTEMPTS", default=2), "mode": "standard"}, max_pool_connections=32,
                  request_checksum_calculation="when_supported", response_checksum_validation="when_supported")


def _static_storages():
    return {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


if env.str("AWS_STORAGE_BUCKET_NAME", default=""):
    globals().update(object_store_settings(
        bucket=env.str("AWS_STORAGE_BUCKET_NAME"), endpoint_url=env.str("AWS_S3_ENDPOINT_URL", default=""),
        access_key=env.str("AWS_ACCESS_KEY_ID", default=""), secret_key=env.str("AWS_SECRET_ACCESS_KEY", default=""),
        region=env.str("AWS_S3_REGION_NAME", default=""), addressing_style=env.str("AWS_S3_ADDRESSING_STYLE", default=""),
    ))
else:
    STORAGES = {**_static_storages(), **LOCAL_STORAGES}

