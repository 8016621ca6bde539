"""An Administrator (group "Administrators", is_staff, not a superuser) manages users in Django
admin only within their own role: posted through the admin's own HTTP forms."""
import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse


def change_form_data(client, user):
    """What the admin change form would post back unchanged, read from the rendered form."""
    response = client.get(reverse("admin:auth_user_change", args=[user.pk]))
    assert response.status_code == 200
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms += list(formset.forms)
        data.update({f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()})
    for form in forms:
        for name, field in form.fields.items():
            if field.disabled:
                continue
            value = form[name].value()
            key = form.add_prefix(name)
            if isinstance(value, bool):
                if value:
                    data[key] = "on"
            elif isinstance(value, (list, tuple)):
                data[key] = [str(item) for item in value]
            elif value is not None:
                data[key] = str(value) if not hasattr(value, "strftime") else value
    for key, value in list(data.items()):
        if hasattr(value, "strftime"):
            data[key + "_0"], data[key + "_1"] = value.strftime("%Y-%m-%d"), value.strftime("%H:%M:%S")
            del data[key]
    return data


@pytest.fixture
def admin_client(client, administrator):
    client.force_login(administrator)
    return client


def test_an_administrator_does_not_see_the_superuser_field(admin_client, administrator):
    response = admin_client.get(reverse("admin:auth_user_change", args=[administrator.pk]))
    assert b'name="is_superuser"' not in response.content
    assert b'name="user_permissions"' not in response.content


def test_an_administrator_cannot_make_themselves_superuser(admin_client, administrator):
    data = change_form_data(admin_client, administrator)
    data.update(is_superuser="on", first_name="Changed")
    response = admin_client.post(reverse("admin:auth_user_change", args=[administrator.pk]), data)
    assert response.status_code == 302
    administrator.refresh_from_db()
    assert administrator.first_name == "Changed"  # the form was accepted...
    assert not administrator.is_superuser  # ...without the field it does not offer


def test_an_administrator_cannot_grant_a_permission_to_a_user(admin_client, clinician):
    data = change_form_data(admin_client, clinician)
    data["user_permissions"] = [str(Permission.objects.get(codename="change_group").pk)]
    admin_client.post(reverse("admin:auth_user_change", args=[clinician.pk]), data)
    assert not clinician.user_permissions.exists()


def test_an_administrator_cannot_change_their_own_groups(admin_client, administrator):
    data = change_form_data(admin_client, administrator)
    data["groups"] = [str(Group.objects.get(name="Clinicians").pk)]
    admin_client.post(reverse("admin:auth_user_change", args=[administrator.pk]), data)
    assert list(administrator.groups.values_list("name", flat=True)) == ["Administrators"]


def test_an_administrator_cannot_grant_a_group_beyond_their_role(admin_client, clinician):
    powerful = Group.objects.create(name="Group editors")
    powerful.permissions.add(Permission.objects.get(codename="change_group"))
    data = change_form_data(admin_client, clinician)
    data["groups"] = [str(powerful.pk)]
    response = admin_client.post(reverse("admin:auth_user_change", args=[clinician.pk]), data)
    assert response.status_code == 200  # the form is shown again with the error
    assert not clinician.groups.filter(pk=powerful.pk).exists()


def test_an_administrator_can_give_a_clinician_the_clinician_role(admin_client, user_without_role):
    data = change_form_data(admin_client, user_without_role)
    data["groups"] = [str(Group.objects.get(name="Clinicians").pk)]
    response = admin_client.post(reverse("admin:auth_user_change", args=[user_without_role.pk]), data)
    assert response.status_code == 302
    assert user_without_role.groups.filter(name="Clinicians").exists()


def test_an_administrator_cannot_change_a_superuser(admin_client):
    root = User.objects.create_superuser("root", password="not-used-in-tests-1")
    assert admin_client.post(reverse("admin:auth_user_change", args=[root.pk]), {"username": "root", "is_active": ""}).status_code == 403
    assert admin_client.post(reverse("admin:auth_user_password_change", args=[root.pk]), {"password1": "x", "password2": "x"}).status_code == 403
    root.refresh_from_db()
    assert root.is_active and root.check_password("not-used-in-tests-1")
