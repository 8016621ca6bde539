"""Every API error is JSON with a stable `code` and one readable sentence under `error`, whatever
raised it: DRF (400, 401, 403, 404, 405, 415, 429), Django outside DRF (unknown /api/ URLs, a bad
Host header, an oversized body, a server error: see portal.errors) or a locked-out sign-in."""
from django.core.exceptions import BadRequest
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# The sentences for errors that do not bring their own.
MESSAGES = {
    400: ("bad_request", "The request could not be processed: it is malformed or contains characters that are not allowed."),
    401: ("not_authenticated", "Sign in, or send a valid API token, to use this endpoint."),
    403: ("permission_denied", "Your account's role does not allow this request."),
    404: ("not_found", "Nothing exists at this address, or you do not have access to it."),
    405: ("method_not_allowed", "This endpoint does not accept that HTTP method."),
    406: ("not_acceptable", "The Accept header asks for a format this endpoint cannot produce; it answers JSON."),
    409: ("conflict", "The request conflicts with an earlier one."),
    411: ("length_required", "Send the upload with a Content-Length header."),
    413: ("request_too_large", "The request is too large."),
    415: ("unsupported_media_type", "This endpoint does not accept that content type."),
    429: ("throttled", "Too many requests; wait a moment and try again."),
    500: ("server_error", "Something went wrong on the server; it was logged for IT. Try again later."),
}


def body(status_code, message=None, code=None, detail=None):
    default_code, default_message = MESSAGES.get(status_code, MESSAGES[400])
    data = {"code": code or default_code, "error": message or default_message}
    if detail is not None:
        data["detail"] = detail
    return data


def json_error(status_code, message=None, code=None):
    """An API error answered outside DRF (a Django handler or a middleware)."""
    return JsonResponse(body(status_code, message, code), status=status_code)


def exception_handler(exc, context):
    if isinstance(exc, BadRequest):
        # Raised below DRF (e.g. a search with control characters): a 400 with its own sentence.
        exc = exceptions.ParseError(str(exc), code="bad_request")
    elif isinstance(exc, Http404):
        # Django's "No Patient matches the given query." names models; one sentence for every 404.
        exc = exceptions.NotFound(MESSAGES[404][1])
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # A server error: portal.errors.server_error answers it as JSON and logs it.
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        response.data = body(response.status_code, "The request is not valid; see the field errors.", "invalid", data)
    elif isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        code = getattr(detail, "code", None) or getattr(exc, "default_code", None)
        response.data = body(response.status_code, str(detail), code)
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            response.data["retry_after_seconds"] = int(exc.wait)
    return response


def refusal(message, code="refused", status_code=status.HTTP_400_BAD_REQUEST):
    """A service's refusal (a sentence for the user) as an API answer."""
    return Response(body(status_code, message, code), status=status_code)
