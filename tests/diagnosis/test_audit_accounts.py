"""Accounts in the one audit trail: users and roles changed in Django admin, passwords, API tokens,
sign-in lockouts and administrators' unlocks."""
import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.urls import reverse

from diagnosis.models import AuditEvent
from tests.diagnosis.test_admin_roles import change_form_data

pytestmark = pytest.mark.django_db
PASSWORD = "not-used-in-tests-1"


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()


def test_a_role_and_a_name_changed_in_admin_are_recorded_old_and_new(client, administrator, user_without_role):
    client.force_login(administrator)
    data = change_form_data(client, user_without_role)
    data.update(groups=[str(Group.objects.get(name="Clinicians").pk)], first_name="Nia")
    assert client.post(reverse("admin:auth_user_change", args=[user_without_role.pk]), data).status_code == 302
    role = AuditEvent.objects.get(action=AuditEvent.Action.ROLE_CHANGED)
    assert (role.actor, role.via, role.details) == (administrator, "admin", {"user": "no_role", "changes": {"groups": [[], ["Clinicians"]]}})
    changed = AuditEvent.objects.get(action=AuditEvent.Action.USER_CHANGED)
    assert changed.details == {"user": "no_role", "changes": {"first_name": ["", "Nia"]}}


def test_a_password_set_in_admin_is_recorded(client, administrator, clinician):
    client.force_login(administrator)
    url = reverse("admin:auth_user_password_change", args=[clinician.pk])
    response = client.post(url, {"password1": "a-New-passphrase-42", "password2": "a-New-passphrase-42", "usable_password": "true"})
    assert response.status_code == 302
    row = AuditEvent.objects.get(action=AuditEvent.Action.PASSWORD_CHANGED)
    assert (row.actor, row.details["user"]) == (administrator, "dr_a")


def test_tokens_made_and_revoked_through_the_api_are_rows(client, clinician):
    made = client.post(reverse("api:token_create"), {"username": "dr_a", "password": PASSWORD})
    assert made.status_code == 201
    token_id = made.json()["id"]
    headers = {"HTTP_AUTHORIZATION": f"Token {made.json()['token']}"}
    assert client.delete(reverse("api:token_revoke", args=[token_id]), **headers).status_code == 204
    rows = AuditEvent.objects.filter(actor=clinician).order_by("id")
    assert [(row.action, row.via, row.details["token"]) for row in rows] == [
        (AuditEvent.Action.TOKEN_CREATED, "api", token_id), (AuditEvent.Action.TOKEN_REVOKED, "api", token_id),
    ]


def test_a_lockout_and_the_administrators_unlock_are_rows(client, clinician, administrator):
    for _ in range(5):
        client.post(reverse("login"), {"username": "dr_a", "password": "wrong-password"})
    locked = AuditEvent.objects.get(action=AuditEvent.Action.SIGNIN_LOCKED_OUT)
    assert (locked.actor, locked.details, locked.ip_address) == (None, {"username": "dr_a"}, "127.0.0.1")
    attempt = AccessAttempt.objects.get(username="dr_a")
    client.force_login(administrator)
    assert client.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"}).status_code == 302
    unlocked = AuditEvent.objects.get(action=AuditEvent.Action.SIGNIN_UNLOCKED)
    assert (unlocked.actor, unlocked.via, unlocked.details) == (administrator, "admin", {"usernames": ["dr_a"]})


def test_api_tokens_have_no_admin_page_that_would_delete_them_outside_the_trail(client, administrator):
    client.force_login(administrator)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/knox/authtoken/").status_code == 404
