"""The audit trail is complete for accounts (sign-in succeeded and failed, sign-out, a password
changed, the trail itself viewed), and usernames cannot pass for one another."""
import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.urls import reverse

from diagnosis import roles
from diagnosis.models import AuditEvent

pytestmark = pytest.mark.django_db
PASSWORD = "not-used-in-tests-1"  # tests.conftest.make_user's password


def rows(action):
    return list(AuditEvent.objects.filter(action=action).values_list("actor__username", "via", "ip_address", "details"))


def test_a_sign_in_a_failed_one_and_a_sign_out_are_rows(client, clinician):
    assert client.post(reverse("login"), {"username": "dr_a", "password": "wrong-password"}).status_code == 200
    assert client.post(reverse("login"), {"username": "dr_a", "password": PASSWORD}).status_code == 302
    assert client.post(reverse("logout")).status_code == 302
    assert rows(AuditEvent.Action.SIGNIN_FAILED) == [(None, "web", "127.0.0.1", {"username": "dr_a"})]
    assert rows(AuditEvent.Action.SIGNED_IN) == [("dr_a", "web", "127.0.0.1", {"username": "dr_a"})]
    assert rows(AuditEvent.Action.SIGNED_OUT) == [("dr_a", "web", "127.0.0.1", {"username": "dr_a"})]


def test_a_wrong_password_for_an_api_token_is_a_row_and_the_password_is_not(client, clinician):
    client.post(reverse("api:token_create"), {"username": "dr_a", "password": "wrong-password"})
    assert rows(AuditEvent.Action.SIGNIN_FAILED) == [(None, "api", "127.0.0.1", {"username": "dr_a"})]


def test_a_user_changes_their_own_password_in_one_audited_place(client, clinician):
    client.force_login(clinician)
    assert client.get("/admin/password_change/")["Location"] == reverse("password_change")
    refused = client.post(reverse("password_change"), {"old_password": "wrong", "new_password1": "Ward-7-night-shift", "new_password2": "Ward-7-night-shift"})
    assert refused.status_code == 200 and not rows(AuditEvent.Action.PASSWORD_CHANGED)
    changed = client.post(reverse("password_change"), {"old_password": PASSWORD, "new_password1": "Ward-7-night-shift", "new_password2": "Ward-7-night-shift"})
    assert changed.status_code == 302
    assert rows(AuditEvent.Action.PASSWORD_CHANGED) == [("dr_a", "web", "127.0.0.1", {"user": "dr_a", "api_tokens": "revoked"})]
    clinician.refresh_from_db()
    assert clinician.check_password("Ward-7-night-shift")


def test_opening_the_audit_trail_is_itself_a_row(client, administrator):
    client.force_login(administrator)
    assert client.get(reverse("diagnosis:audit_trail"), {"action": "scan.viewed"}).status_code == 200
    assert rows(AuditEvent.Action.TRAIL_VIEWED) == [("admin_a", "web", "127.0.0.1", {"filters": {"action": "scan.viewed"}, "page": 1})]


@pytest.mark.parametrize("username", ["DR_A", "dr_а", "ｄｒ_ａ", "Dr_A"], ids=["case", "cyrillic a", "fullwidth", "mixed case"])
def test_a_username_that_passes_for_another_is_refused_in_the_portal_and_in_admin(client, administrator, clinician, site_a, username):
    client.force_login(administrator)
    data = {"username": username, "first_name": "Nia", "last_name": "Mensah", "site": site_a.pk, "role": roles.CLINICIANS}
    response = client.post(reverse("diagnosis:account_create"), data)
    assert response.status_code == 400
    assert "dr_a" in response.content.decode() and "looks like the existing username" in response.content.decode()
    admin_form = client.post(reverse("admin:auth_user_add"), {"username": username, "password1": "Ward-7-night-shift", "password2": "Ward-7-night-shift",
                                                               "usable_password": "true", "staff_profile-TOTAL_FORMS": "0", "staff_profile-INITIAL_FORMS": "0"})
    assert admin_form.status_code == 200 and admin_form.context["adminform"].form.errors["username"]
    assert list(User.objects.values_list("username", flat=True).order_by("username")) == ["admin_a", "dr_a"]


def test_a_name_that_only_looks_similar_to_a_person_is_accepted(client, administrator, clinician, site_a):
    client.force_login(administrator)
    data = {"username": "dr_b", "first_name": "Nia", "last_name": "Mensah", "site": site_a.pk, "role": roles.CLINICIANS}
    assert client.post(reverse("diagnosis:account_create"), data).status_code == 200


def test_the_database_refuses_a_username_taken_in_another_case(clinician):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="DR_A")
