"""The bucket backend of settings.STORAGES (portal/settings/storage.py) when an S3 endpoint and
bucket are set; a module of its own so that a portal on local folders never imports boto3."""
import contextlib
import tempfile

from django.conf import settings
from django.core.files import File
from storages.backends.s3 import S3Storage
from storages.utils import clean_name


class BucketStorage(S3Storage):
    """django-storages' S3 backend with one request per read and per small write. Its own read
    asks HeadObject twice before the GetObject (S3File's early existence check, then s3transfer's
    size lookup), and each read and write starts a transfer manager with its thread pool: on the
    per-scan path (store the film, the worker reads it and stores the heatmap, the web server
    serves both) that was 6 of its 11 requests and half the store's overhead (bench/object_store.py).
    A file larger than the multipart threshold, or compressed, still goes through S3Storage."""

    def _open(self, name, mode="rb"):
        if mode != "rb":
            return super()._open(name, mode)
        key = self._normalize_name(clean_name(name))
        try:
            body = self.connection.meta.client.get_object(Bucket=self.bucket_name, Key=key)["Body"]
        except Exception as error:
            if getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                raise FileNotFoundError(f"File does not exist: {key}") from error
            raise
        # Spooled as S3File spools it: in memory up to max_memory_size (AWS_S3_MAX_MEMORY_SIZE).
        spooled = tempfile.SpooledTemporaryFile(max_size=self.max_memory_size, suffix=".S3File", dir=settings.FILE_UPLOAD_TEMP_DIR)
        with contextlib.closing(body):
            for chunk in body.iter_chunks(1 << 20):
                spooled.write(chunk)
        spooled.seek(0)
        return File(spooled, name)

    def _save(self, name, content):
        size = getattr(content, "size", None)
        if self.gzip or size is None or size >= self.transfer_config.multipart_threshold:
            return super()._save(name, content)
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        parameters = self._get_write_parameters(key, content)
        content.seek(0)
        data = content.read()
        self.connection.meta.client.put_object(Bucket=self.bucket_name, Key=key, Body=data.encode() if isinstance(data, str) else data, **parameters)
        return cleaned
