"""Sign-in lockout (django-axes) on the portal login, the admin login and the token API, and API
tokens (django-rest-knox) that expire, can be listed and revoked, and end with a password change."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

PASSWORD = "not-used-in-tests-1"  # tests.conftest.make_user's password
LOCKED = "Too many failed sign-ins for this account; try again in 15 minutes or ask an administrator to unlock it."


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()


def fail_five_times(client, url, username):
    # The first four are ordinary refusals; the fifth failure locks the account (django-axes
    # answers it with the lockout already).
    statuses = [client.post(url, {"username": username, "password": "wrong-password"}).status_code for _ in range(5)]
    assert 429 not in statuses[:4] and statuses[4] == 429


@pytest.mark.parametrize("login, username", [("login", "dr_a"), ("admin:login", "admin_a")], ids=["portal", "admin"])
def test_the_sixth_sign_in_is_refused_even_with_the_right_password(client, clinician, administrator, login, username):
    fail_five_times(client, reverse(login), username)
    response = client.post(reverse(login), {"username": username, "password": PASSWORD})
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_sixth_token_request_is_refused_even_with_the_right_password(client, clinician):
    fail_five_times(client, reverse("api:token_create"), "dr_a")
    response = client.post(reverse("api:token_create"), {"username": "dr_a", "password": PASSWORD})
    assert response.status_code == 429
    assert response.json() == {"code": "locked_out", "error": LOCKED}
    assert not AuthToken.objects.exists()


def test_an_administrator_unlocks_an_account_with_the_management_command(client, clinician):
    fail_five_times(client, reverse("login"), "dr_a")
    call_command("axes_reset_username", "dr_a")
    response = client.post(reverse("login"), {"username": "dr_a", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(clinician.pk)


def test_token_requests_are_throttled(client, db):
    responses = [client.post(reverse("api:token_create"), {"username": f"nobody{i}", "password": "x"}) for i in range(11)]
    assert [response.status_code for response in responses[:10]] == [400] * 10
    assert responses[10].status_code == 429
    assert responses[10].json()["code"] == "throttled"


def test_a_token_asked_for_with_the_password_opens_the_api(client, clinician):
    created = client.post(reverse("api:token_create"), {"username": "dr_a", "password": PASSWORD})
    assert created.status_code == 201
    assert created.json()["expiry"]
    response = client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {created.json()['token']}")
    assert response.status_code == 200


def test_a_wrong_password_gets_no_token(client, clinician):
    response = client.post(reverse("api:token_create"), {"username": "dr_a", "password": "wrong-password"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_credentials"


def test_an_expired_token_is_refused(client, clinician):
    instance, token = AuthToken.objects.create(clinician)
    AuthToken.objects.filter(pk=instance.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_password_change_revokes_the_tokens(client, clinician):
    _, token = AuthToken.objects.create(clinician)
    user = User.objects.get(pk=clinician.pk)
    user.set_password("a-brand-new-password-2")
    user.save()
    response = client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401


def test_an_administrator_changing_a_password_in_admin_revokes_the_tokens(client, administrator, clinician):
    _, token = AuthToken.objects.create(clinician)
    client.force_login(administrator)
    new = "a-brand-new-password-2"
    response = client.post(reverse("admin:auth_user_password_change", args=[clinician.pk]), {"password1": new, "password2": new})
    assert response.status_code == 302
    assert client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {token}").status_code == 401


def test_deactivating_a_user_revokes_the_tokens(client, clinician):
    _, token = AuthToken.objects.create(clinician)
    user = User.objects.get(pk=clinician.pk)
    user.is_active = False
    user.save()
    assert not AuthToken.objects.filter(user=clinician).exists()
    assert client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {token}").status_code == 401


def test_a_user_lists_only_their_own_tokens(client, clinician, other_site_clinician):
    mine, token = AuthToken.objects.create(clinician)
    AuthToken.objects.create(other_site_clinician)
    response = client.get(reverse("api:token_list"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [mine.token_key]
    assert "token" not in response.json()["results"][0]


def test_a_user_revokes_their_own_token(client, clinician):
    kept, kept_token = AuthToken.objects.create(clinician)
    revoked, revoked_token = AuthToken.objects.create(clinician)
    response = client.delete(reverse("api:token_revoke", args=[revoked.token_key]), HTTP_AUTHORIZATION=f"Token {kept_token}")
    assert response.status_code == 204
    assert client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {revoked_token}").status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(client, clinician, other_site_clinician):
    _, token = AuthToken.objects.create(clinician)
    theirs, _ = AuthToken.objects.create(other_site_clinician)
    response = client.delete(reverse("api:token_revoke", args=[theirs.token_key]), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 404
    assert AuthToken.objects.filter(pk=theirs.pk).exists()


def test_a_user_holds_at_most_ten_tokens(client, clinician):
    for _ in range(10):
        assert client.post(reverse("api:token_create"), {"username": "dr_a", "password": PASSWORD}).status_code == 201
        cache.clear()  # the token throttle allows 10 a minute; this test is about the per-user limit
    response = client.post(reverse("api:token_create"), {"username": "dr_a", "password": PASSWORD})
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_tokens"


def test_the_token_page_issues_a_token_shown_once(clinician_client, clinician):
    response = clinician_client.post(reverse("api_tokens"))
    assert response.status_code == 200
    secret = response.context["new_token"]
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert secret not in clinician_client.get(reverse("api_tokens")).content.decode()


def test_the_token_page_revokes_an_own_token(clinician_client, clinician):
    instance, token = AuthToken.objects.create(clinician)
    response = clinician_client.post(reverse("api_tokens"), {"revoke": instance.token_key})
    assert response.status_code == 302
    assert not AuthToken.objects.filter(pk=instance.pk).exists()


def test_the_token_page_does_not_revoke_someone_elses_token(clinician_client, other_site_clinician):
    theirs, _ = AuthToken.objects.create(other_site_clinician)
    clinician_client.post(reverse("api_tokens"), {"revoke": theirs.token_key})
    assert AuthToken.objects.filter(pk=theirs.pk).exists()


def test_the_token_page_needs_a_login(client, db):
    response = client.get(reverse("api_tokens"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
