"""Set-password links die with the account's state (deactivation, a role change, a password change,
a newer link), setting a password through one is in the audit trail, and the web server's access log
never shows a link's token."""
import re
import socket
import subprocess
import time
import urllib.request

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from diagnosis import roles
from diagnosis.models import AuditEvent
from tests.conftest import PROJECT_ROOT, worker_environment

NEW_PASSWORD = "Ward-7-night-shift"


def issue_link(client, administrator, user):
    client.force_login(administrator)
    response = client.post(reverse("diagnosis:account_edit", args=[user.pk]), {"password_link": "1"})
    assert response.status_code == 200
    client.logout()
    return re.search(r"http://testserver(/accounts/set-password/[^<\s]+)", response.content.decode()).group(1)


def set_password(client, link):
    """Open the link as its recipient would and submit a new password; the response of the submit,
    or None when the page says the link no longer works."""
    form_page = client.get(link, follow=True)
    if b"already been used or has expired" in form_page.content:
        return None
    return client.post(form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})


@pytest.mark.django_db
def test_setting_a_password_through_a_link_is_a_row(client, administrator, clinician):
    link = issue_link(client, administrator, clinician)
    assert set_password(client, link).status_code == 302
    event = AuditEvent.objects.get(action=AuditEvent.Action.PASSWORD_SET_BY_LINK)
    assert (event.actor, event.details, event.ip_address) == (None, {"user": "dr_a"}, "127.0.0.1")


def deactivate(client, administrator, user):
    client.force_login(administrator)
    client.post(reverse("diagnosis:account_edit", args=[user.pk]), {"site": user.staff_profile.site_id, "role": roles.role_of(user)})
    client.logout()


def change_role(client, administrator, user):
    client.force_login(administrator)
    client.post(reverse("diagnosis:account_edit", args=[user.pk]), {"site": user.staff_profile.site_id, "role": roles.ADMINISTRATORS, "is_active": "on"})
    client.logout()


def change_password(client, administrator, user):
    user.set_password("Another-password-42")
    user.save()


def issue_a_newer_link(client, administrator, user):
    issue_link(client, administrator, user)


@pytest.mark.django_db
@pytest.mark.parametrize("change", [deactivate, change_role, change_password, issue_a_newer_link])
def test_a_link_dies_with_the_accounts_state(client, administrator, clinician, change):
    link = issue_link(client, administrator, clinician)
    change(client, administrator, User.objects.get(pk=clinician.pk))
    assert set_password(client, link) is None
    clinician.refresh_from_db()
    assert not clinician.check_password(NEW_PASSWORD)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PASSWORD_SET_BY_LINK).exists()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_the_access_log_of_bin_portal_web_never_shows_a_link_token(client, administrator, clinician, tmp_path):
    link = issue_link(client, administrator, clinician)
    token = link.rstrip("/").rsplit("/", 1)[1]
    port = free_port()
    env = {**worker_environment(), "PORTAL_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([str(PROJECT_ROOT / "bin/portal"), "web"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                opened = urllib.request.urlopen(f"http://127.0.0.1:{port}{link}", timeout=10)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
        assert b"Set your password" in opened.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
    access_log = log_path.read_text()
    assert "GET /accounts/set-password/" in access_log
    assert token not in access_log
