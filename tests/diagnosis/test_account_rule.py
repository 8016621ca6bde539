"""The one rule for every change to another account (diagnosis.account_rule), through every path
that changes one: the portal's user pages (role, site, deactivation, set-password link), Django
admin (the change form, the password form, an unlock) and the API (which offers none)."""
import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from diagnosis import roles
from diagnosis.models import AuditEvent
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(site_a):
    """May manage accounts, but holds only a clinician's permissions besides."""
    user = make_user("manager", roles.CLINICIANS, site_a)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_user", "view_user", "change_user"]))
    return user


@pytest.fixture
def stronger_administrator(site_a):
    """An Administrator who also holds a permission the role does not grant."""
    user = make_user("admin_plus", roles.ADMINISTRATORS, site_a)
    user.user_permissions.add(Permission.objects.get(codename="delete_patient"))
    return user


def edit(client, actor, target, data):
    client.force_login(actor)
    return client.post(reverse("diagnosis:account_edit", args=[target.pk]), data)


@pytest.mark.parametrize("actor_name, target_name", [("manager", "administrator"), ("administrator", "stronger_administrator")])
def test_no_set_password_link_for_an_account_holding_more_than_the_actor(client, request, actor_name, target_name):
    actor, target = request.getfixturevalue(actor_name), request.getfixturevalue(target_name)
    response = edit(client, actor, target, {"password_link": "1"})
    assert response.status_code == 400
    assert b"holds permissions yours does not" in response.content
    assert b"/accounts/set-password/" not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.USER_PASSWORD_LINK).exists()


def test_no_role_site_or_access_change_for_an_account_holding_more(client, administrator, stronger_administrator, site_b):
    response = edit(client, administrator, stronger_administrator, {"site": site_b.pk, "role": roles.ADMINISTRATORS})
    assert response.status_code == 400
    stronger_administrator.refresh_from_db()
    assert stronger_administrator.is_active and stronger_administrator.staff_profile.site.code == "ste"


def test_a_deactivated_administrator_is_not_reactivated_by_a_weaker_manager(client, manager, administrator, site_a):
    User.objects.filter(pk=administrator.pk).update(is_active=False)
    response = edit(client, manager, administrator, {"site": site_a.pk, "role": roles.CLINICIANS, "is_active": "on"})
    assert response.status_code == 400
    administrator.refresh_from_db()
    assert not administrator.is_active and roles.role_of(administrator) == roles.ADMINISTRATORS


def test_an_administrator_still_issues_a_link_for_a_clinician(client, administrator, clinician):
    response = edit(client, administrator, clinician, {"password_link": "1"})
    assert response.status_code == 200 and b"/accounts/set-password/" in response.content


def test_django_admin_refuses_the_change_and_password_forms_of_a_stronger_account(client, administrator, stronger_administrator):
    client.force_login(administrator)
    change = client.post(reverse("admin:auth_user_change", args=[stronger_administrator.pk]), {"username": "admin_plus", "is_active": ""})
    password = client.post(reverse("admin:auth_user_password_change", args=[stronger_administrator.pk]),
                           {"password1": "Taken-over-123", "password2": "Taken-over-123"})
    assert (change.status_code, password.status_code) == (403, 403)
    stronger_administrator.refresh_from_db()
    assert stronger_administrator.is_active and stronger_administrator.check_password("not-used-in-tests-1")


def test_django_admin_unlocks_only_an_account_the_administrator_may_change(client, administrator, stronger_administrator, clinician):
    stronger = AccessAttempt.objects.create(username="admin_plus", failures_since_start=5, ip_address="10.0.0.1")
    weaker = AccessAttempt.objects.create(username="dr_a", failures_since_start=5, ip_address="10.0.0.1")
    client.force_login(administrator)
    assert client.post(reverse("admin:axes_accessattempt_delete", args=[stronger.pk]), {"post": "yes"}).status_code == 403
    assert client.post(reverse("admin:axes_accessattempt_delete", args=[weaker.pk]), {"post": "yes"}).status_code == 302
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["admin_plus"]


def test_the_api_offers_no_way_to_change_another_account(client, clinician, administrator):
    """The API's only account writes are one's own tokens; the schema lists no user endpoint."""
    client.force_login(administrator)
    schema = client.get(reverse("api:schema"), HTTP_ACCEPT="application/json").json()
    assert not [path for path in schema["paths"] if "user" in path]
    token = client.post(reverse("api:token_create"), {"username": "dr_a", "password": "not-used-in-tests-1"}).json()["id"]
    assert client.delete(reverse("api:token_revoke", args=[token])).status_code == 404
