"""The storage backends behind settings.STORAGES (portal/settings/storage.py), and the one way
their failures are named: an object store that does not answer is `StoreUnavailable`, whatever
the backend said, so an upload can answer 503 and a worker can retry its job later."""
import contextlib
import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages


class StoreUnavailable(Exception):
    """The file store did not answer (connection refused, timed out, 5xx): try again later."""


class PrivateFolderStorage(FileSystemStorage):
    """A private local folder named by a setting (SCAN_STORAGE_DIR, MODEL_STORE_DIR), read at each
    use so that the test session and `bin/portal setup` see the folder in force. Files are mode
    0600 in 0700 folders, written atomically and durably: a temporary file, fsync, then rename, so a
    crash never leaves half a film under its final name."""

    def __init__(self, setting, **options):
        self.setting = setting
        super().__init__(file_permissions_mode=0o600, directory_permissions_mode=0o700, **options)

    @property
    def base_location(self):
        return str(getattr(settings, self.setting))

    @property
    def location(self):
        return os.path.abspath(self.base_location)

    def _save(self, name, content):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temporary = f"{path}.part"
        with open(temporary, "wb") as handle:
            for chunk in content.chunks():
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        return name


def named(alias):
    return storages[alias]


def is_local(alias):
    """True when the named storage is a folder on this host (the default), False for a bucket."""
    return isinstance(storages[alias], FileSystemStorage)


def _unavailable_errors():
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError, HTTPClientError
    except ImportError:  # boto3 is only needed with an object store
        return ()
    return (BotoConnectionError, HTTPClientError)


def _is_server_error(error):
    response = getattr(error, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500


@contextlib.contextmanager
def answering(what):
    """Name a store that does not answer StoreUnavailable (with `what` was being done), and an
    object that is not there FileNotFoundError, for every backend."""
    try:
        yield
    except _unavailable_errors() as error:
        raise StoreUnavailable(f"The file store did not answer while {what}: {error}") from error
    except Exception as error:
        if type(error).__name__ == "ClientError":  # botocore's, raised only by an object store
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"Not in the file store: {what}") from error
            if _is_server_error(error):
                raise StoreUnavailable(f"The file store failed while {what}: {error}") from error
        raise


def ensure_buckets():
    """Create the configured bucket when it is missing (a new SeaweedFS or MinIO); `bin/portal
    setup` calls it. Returns the buckets created. An AWS bucket is usually made by its owner, with
    its policy; creating one here is only the fallback, and it is private (no ACL, no policy)."""
    created = []
    for alias in ("scans", "models", "datasets"):
        storage = storages[alias]
        if isinstance(storage, FileSystemStorage) or storage.bucket_name in created:
            continue
        client = storage.connection.meta.client
        with answering(f"checking the bucket {storage.bucket_name}"):
            try:
                client.head_bucket(Bucket=storage.bucket_name)
                continue
            except Exception as error:
                if getattr(error, "response", {}).get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            region = storage.region_name
            where = {"CreateBucketConfiguration": {"LocationConstraint": region}} if region and region != "us-east-1" else {}
            client.create_bucket(Bucket=storage.bucket_name, **where)
            created.append(storage.bucket_name)
    return created
