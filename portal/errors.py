"""Error answers for the whole site: JSON under /api/, a plain page elsewhere.

The pages render standalone templates (no base.html, no context processor): a 400 for a bad Host
header is rendered before the session and the user exist, and an error page must never fail."""
from django.conf import settings
from django.core.exceptions import BadRequest
from django.shortcuts import render
from django.views import defaults

from diagnosis.api.errors import MESSAGES, json_error


def is_api(request):
    return request.path_info.startswith(("/api/", "/dicomweb/"))


def _page(request, template, status, **context):
    return render(request, template, context, status=status)


def bad_request(request, exception):
    # A BadRequest raised by the portal carries a sentence for the user; other 400s (a bad Host
    # header, a malformed body) may echo the attacker's input and get the generic sentence.
    message = str(exception) if type(exception) is BadRequest else None
    if is_api(request):
        return json_error(400, message)
    return _page(request, "400.html", 400, message=message)


def permission_denied(request, exception):
    if is_api(request):
        return json_error(403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if is_api(request):
        return json_error(404)
    return _page(request, "404.html", 404)


def server_error(request):
    if is_api(request):
        return json_error(500)
    return defaults.server_error(request)


def too_large(request, message=None):
    message = message or f"The upload is too large: at most {settings.UPLOAD_MAX_REQUEST_BYTES // (1024 * 1024)} MB in one request."
    if is_api(request):
        return json_error(413, message)
    return _page(request, "413.html", 413, message=message)


def length_required(request):
    if is_api(request):
        return json_error(411)
    return _page(request, "413.html", 411, message=MESSAGES[411][1])


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a sign-in for a locked-out account (AXES_LOCKOUT_CALLABLE)."""
    message = settings.AXES_COOLOFF_MESSAGE
    if is_api(request):
        return json_error(429, message, code="locked_out")
    return _page(request, "429.html", 429, message=message)
