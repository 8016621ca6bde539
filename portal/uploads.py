"""The per-file cap on uploads, enforced while the body streams in.

The request-size middleware refuses a body whose Content-Length is over the whole-request limit
before it is read. Inside an accepted body, each file is still limited to SCAN_MAX_UPLOAD_BYTES:
this handler is first in FILE_UPLOAD_HANDLERS, sees every chunk before Django's memory and
temporary-file handlers do, and stops the upload at the chunk that would pass the cap. So no
file over the cap is ever written to a temporary file (the partial one is closed and removed)."""
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


def file_too_large_sentence(file_name):
    limit = settings.SCAN_MAX_UPLOAD_BYTES
    shown = f"{limit / 2**20:.0f} MB" if limit >= 2**20 else f"{limit / 2**10:.0f} KB"
    return f"“{file_name}” is larger than {shown}, the most one image may be; nothing was stored. Send it smaller (or as separate images)."


class PerFileSizeLimitHandler(FileUploadHandler):
    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.SCAN_MAX_UPLOAD_BYTES:
            # portal.middleware answers 413 with this sentence before any view sees the request.
            self.request.upload_refusal = file_too_large_sentence(self.file_name)
            raise StopUpload(connection_reset=False)  # the rest of the body is read and dropped, never stored
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler (memory or temporary file) makes the file
