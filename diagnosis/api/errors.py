from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """Every API error carries one readable sentence under "error", beside DRF's own detail."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        data = response.data
        if isinstance(data, dict) and "detail" in data:
            message = str(data["detail"])
        else:
            message = "The request is not valid; see the field errors."
        response.data = {"error": message, "detail": data}
    return response
