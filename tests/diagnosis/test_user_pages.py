"""Administration in the portal's own pages, through HTTP: one screen makes a user at a site with a
role and a one-time set-password link; roles are given only within the administrator's own
permissions (the rule Django admin uses); every change is audited."""
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from knox.models import AuthToken

from diagnosis import roles
from diagnosis.models import AuditEvent
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Ward-7-night-shift"


@pytest.fixture
def admin_client(client, administrator):
    client.force_login(administrator)
    return client


def new_user(client, role=roles.CLINICIANS, site=None, **extra):
    data = {"username": "dr_new", "first_name": "Nia", "last_name": "Mensah", "email": "nia@example.org", "site": site.pk, "role": role, **extra}
    return client.post(reverse("diagnosis:account_create"), data)


def test_an_administrator_creates_a_clinician_in_one_screen_who_sets_their_own_password(admin_client, administrator, site_b, client):
    response = new_user(admin_client, site=site_b)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    user = User.objects.get(username="dr_new")
    assert [group.name for group in user.groups.all()] == [roles.CLINICIANS]
    assert (user.staff_profile.site, user.is_staff, user.is_superuser, user.has_usable_password()) == (site_b, False, False, False)
    assert user.has_perm("diagnosis.add_scan")
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_CREATED)
    assert (event.actor, event.details) == (administrator, {"user": "dr_new", "role": roles.CLINICIANS, "site": str(site_b)})

    link = re.search(r"http://testserver(/accounts/set-password/[^<\s]+)", response.content.decode()).group(1)
    client.logout()
    form_page = client.get(link, follow=True)  # Django swaps the token for a session marker and redirects
    assert form_page.status_code == 200 and b"Set your password" in form_page.content
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    signed_in = client.post(reverse("login"), {"username": "dr_new", "password": NEW_PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"
    client.logout()
    again = client.get(link, follow=True)
    assert b"already been used or has expired" in again.content, "the link works once"


def test_a_taken_username_or_a_bad_field_is_a_sentence_and_nothing_is_made(admin_client, clinician, site_a):
    response = new_user(admin_client, site=site_a, username=clinician.username)
    assert response.status_code == 400 and b"already taken" in response.content
    response = new_user(admin_client, site=site_a, username="has space", email="not-an-address")
    assert response.status_code == 400
    assert b"A username may hold only" in response.content and b"valid email" in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.USER_CREATED).exists()


def test_posting_superuser_or_staff_flags_does_nothing(admin_client, site_a):
    new_user(admin_client, site=site_a, is_superuser="on", is_staff="on")
    user = User.objects.get(username="dr_new")
    assert not user.is_superuser and not user.is_staff


def test_a_role_is_given_only_by_someone_who_holds_all_it_grants(client, site_a):
    """A user manager who may add accounts but holds only the clinicians' permissions cannot make an
    Administrator: the role is not offered, and posting it is refused."""
    manager = make_user("manager", roles.CLINICIANS, site_a)
    manager.user_permissions.add(*Permission.objects.filter(codename__in=["add_user", "view_user", "change_user"]))
    client.force_login(manager)
    form = client.get(reverse("diagnosis:account_create"))
    assert [value for value, _ in form.context["form"].fields["role"].choices] == [roles.CLINICIANS]
    response = new_user(client, role=roles.ADMINISTRATORS, site=site_a)
    assert response.status_code == 400
    assert not User.objects.filter(username="dr_new").exists()
    target = make_user("dr_c", roles.CLINICIANS, site_a)
    response = client.post(reverse("diagnosis:account_edit", args=[target.pk]), {"site": site_a.pk, "role": roles.ADMINISTRATORS, "is_active": "on"})
    assert response.status_code == 400
    assert [group.name for group in target.groups.all()] == [roles.CLINICIANS]


def test_an_administrator_changes_role_and_site_and_deactivates(admin_client, administrator, clinician, site_b):
    url = reverse("diagnosis:account_edit", args=[clinician.pk])
    response = admin_client.post(url, {"site": site_b.pk, "role": roles.ADMINISTRATORS, "is_active": "on"})
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert (roles.role_of(clinician), clinician.staff_profile.site, clinician.is_staff) == (roles.ADMINISTRATORS, site_b, True)
    AuthToken.objects.create(clinician)
    admin_client.post(url, {"site": site_b.pk, "role": roles.ADMINISTRATORS})
    clinician.refresh_from_db()
    assert not clinician.is_active
    assert not AuthToken.objects.filter(user=clinician).exists(), "a deactivated account's API tokens end"
    details = list(AuditEvent.objects.filter(action=AuditEvent.Action.USER_CHANGED, details__user=clinician.username).order_by("at").values_list("details", flat=True))
    assert [row["changes"] for row in details] == [
        {"role": [roles.CLINICIANS, roles.ADMINISTRATORS], "site": ["St Elsewhere", "County General"]}, {"is_active": [True, False]},
    ]


def test_no_one_changes_their_own_account_and_an_administrator_never_changes_a_superuser(admin_client, administrator, site_a):
    response = admin_client.post(reverse("diagnosis:account_edit", args=[administrator.pk]), {"site": site_a.pk, "role": roles.CLINICIANS})
    assert response.status_code == 400 and b"cannot change your own" in response.content
    root = User.objects.create_superuser("root", password="x-not-used-1")
    response = admin_client.post(reverse("diagnosis:account_edit", args=[root.pk]), {"site": site_a.pk, "role": roles.CLINICIANS})
    assert response.status_code == 400 and b"Only a superuser" in response.content
    response = admin_client.post(reverse("diagnosis:account_edit", args=[root.pk]), {"password_link": "1"})
    assert response.status_code == 400
    root.refresh_from_db()
    assert root.is_active and root.is_superuser and not root.groups.exists()
    assert not AuditEvent.objects.filter(details__user="root").exists()


def test_the_list_shows_role_and_site_and_clinicians_get_403(admin_client, client, clinician):
    page = admin_client.get(reverse("diagnosis:account_list")).content.decode()
    assert "dr_a" in page and "Clinicians" in page and "St Elsewhere" in page
    client.force_login(clinician)
    for url in (reverse("diagnosis:account_list"), reverse("diagnosis:account_create"), reverse("diagnosis:account_edit", args=[clinician.pk])):
        assert client.get(url).status_code == 403
    assert new_user(client, site=clinician.staff_profile.site).status_code == 403
    assert not User.objects.filter(username="dr_new").exists()


def test_the_readme_tokens_page_works_for_a_clinician(client, clinician):
    """The README sends every user to their own API tokens page."""
    readme = (__import__("pathlib").Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "/accounts/tokens/" in readme
    client.force_login(clinician)
    response = client.get("/accounts/tokens/")
    assert response.status_code == 200 and b"Your API tokens" in response.content
