"""The OpenAPI side of the API's errors: one error component, listed on every operation.

Every status a view can answer is in the schema: its own (from `extend_schema`) and the ones any
request can meet (bad input, no token, no permission, unknown or hidden record, wrong method or
content type, too large, throttled, server error), all with the same JSON body (errors.body)."""
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from .errors import MESSAGES


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: e.g. not_found, invalid, idempotency_key_reused.")
    error = serializers.CharField(help_text="One sentence for a person.")
    detail = serializers.JSONField(required=False, help_text="For `invalid`: the errors of each field.")
    retry_after_seconds = serializers.IntegerField(required=False, help_text="For `throttled`.")


# Statuses any operation can answer; 413 and 415 only where the request has a body.
EVERY_OPERATION = (400, 401, 403, 404, 405, 406, 429, 500)
WITH_A_BODY = (413, 415)


class ApiSchema(AutoSchema):
    """Adds the shared error responses to what the view documents itself (a view's own
    `extend_schema(responses=...)` entry for a code wins)."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = EVERY_OPERATION + (WITH_A_BODY if self.method in {"POST", "PUT", "PATCH"} else ())
        for code in codes:
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(ErrorSerializer, str(code), direction=direction)
                responses[str(code)]["description"] = MESSAGES[code][1]
        return dict(sorted(responses.items()))
