"""Request-wide protections that no single view can give."""
from django.conf import settings
from django.urls import Resolver404, resolve
from django.utils.cache import add_never_cache_headers

from . import errors

# The URLs that take scan files; every other body is small (DATA_UPLOAD_MAX_MEMORY_SIZE).
UPLOAD_URL_NAMES = {"diagnosis:scan_upload", "api:patient_scans", "dicomweb:stow"}


def _upload_url(request):
    try:
        return resolve(request.path_info).view_name in UPLOAD_URL_NAMES
    except Resolver404:
        return False


class RequestSizeLimitMiddleware:
    """Refuses a body over the limit from its Content-Length, before anything reads it, so that a
    300 MB upload is never spooled to a temporary file. Upload URLs allow
    UPLOAD_MAX_REQUEST_BYTES; any other URL allows DATA_UPLOAD_MAX_MEMORY_SIZE plus room for the
    multipart framing. A chunked body without Content-Length is refused with 411 (Django would
    otherwise read it as empty).

    An accepted upload's form is then read here, so that a file over the per-file cap (stopped
    while streaming by portal.uploads) is answered 413 with its sentence before any view, page or
    API, sees what is left of the form."""

    FRAMING_MARGIN = 64 * 1024

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        upload = _upload_url(request)
        limit = settings.UPLOAD_MAX_REQUEST_BYTES if upload else settings.DATA_UPLOAD_MAX_MEMORY_SIZE + self.FRAMING_MARGIN
        length = request.META.get("CONTENT_LENGTH") or ""
        if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return errors.length_required(request)
        try:
            too_large = int(length or 0) > limit
        except ValueError:
            return errors.bad_request(request, None)
        if too_large:
            return errors.too_large(request)
        if upload and request.method == "POST" and request.content_type == "multipart/form-data":
            request.POST  # noqa: B018  (reads the form through the upload handlers)
            refusal = getattr(request, "upload_refusal", None)
            if refusal:
                return errors.too_large(request, refusal)
        return self.get_response(request)


class NoStoreMiddleware:
    """Every page a signed-in user sees and every API answer may carry patient data: no browser,
    proxy or shared workstation may keep a copy (Cache-Control: no-store, private)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if errors.is_api(request) or (user is not None and user.is_authenticated):
            add_never_cache_headers(response)
        return response
