"""The bucket backend of settings.STORAGES (portal/settings/storage.py) when an S3 endpoint and
bucket are set; a module of its own so that a portal on local folders never imports boto3."""
import contextlib
import os
import tempfile
import threading

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
    A file larger than the multipart threshold, or compressed, still goes through S3Storage.

    Those reads and writes share one boto3 client per process (`client`), where S3Storage keeps a
    session, resource and client per thread: a worker reads films and writes heatmaps in thread
    pools (diagnosis.inference), and each new thread's first request took 70-180 ms instead of
    3-5 ms (a session, the S3 service model loaded again, a new connection), once per thread, up to
    the batch size's heatmap writers. boto3's clients are thread-safe; its resources are not, and
    the rarer calls (delete, listing, multipart) keep S3Storage's own."""

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_process_client", None)
        return state

    @property
    def client(self):
        """This process's client, made once from the first asking thread's connection; a process
        forked from one that had made it makes its own (a connection is not shared across a fork)."""
        made = self.__dict__.get("_process_client")
        if made is None or made[0] != os.getpid():
            with _MAKING_CLIENT:
                made = self.__dict__.get("_process_client")
                if made is None or made[0] != os.getpid():
                    if made is not None:  # forked: this thread's connection, if any, is the parent's
                        self._connections = threading.local()
                    made = self._process_client = (os.getpid(), self.connection.meta.client)
        return made[1]

    def _open(self, name, mode="rb"):
        if mode != "rb":
            return super()._open(name, mode)
        key = self._normalize_name(clean_name(name))
        try:
            body = self.client.get_object(Bucket=self.bucket_name, Key=key)["Body"]
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
        self.client.put_object(Bucket=self.bucket_name, Key=key, Body=data.encode() if isinstance(data, str) else data, **parameters)
        return cleaned


_MAKING_CLIENT = threading.Lock()
