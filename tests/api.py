"""Calling the API as another hospital system does: with a knox token in the Authorization header."""
from knox.models import AuthToken


def token_headers(user):
    return {"HTTP_AUTHORIZATION": f"Token {AuthToken.objects.create(user)[1]}"}


def assert_json_error(response, status_code, code=None):
    assert response.status_code == status_code, response.content
    body = response.json()
    assert body["error"] and body["code"] == (code or body["code"])
    return body


def token_client(user):
    """A DRF client that sends the user's token, as another hospital system would."""
    from rest_framework.test import APIClient

    return APIClient(headers={"Authorization": token_headers(user)["HTTP_AUTHORIZATION"]})
