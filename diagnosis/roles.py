"""Two roles, held as Django groups so that permissions stay the single source of truth.

Clinicians work with patients, scans and results at their own site. Administrators can do all of
that at every site, and also manage users, sites and model versions.
"""
from django.contrib.auth.models import Group, Permission

CLINICIANS = "Clinicians"
ADMINISTRATORS = "Administrators"

CLINICIAN_PERMISSIONS = [
    "diagnosis.view_patient",
    "diagnosis.add_patient",
    "diagnosis.view_scan",
    "diagnosis.add_scan",
    "diagnosis.view_prediction",
    "diagnosis.add_review",
]
ADMINISTRATOR_PERMISSIONS = CLINICIAN_PERMISSIONS + [
    "ml.manage_models",
    "ml.view_modelversion",
    "ml.view_trainingjob",
    "diagnosis.view_site",
    "diagnosis.add_site",
    "diagnosis.change_site",
    "diagnosis.view_staffprofile",
    "diagnosis.add_staffprofile",
    "diagnosis.change_staffprofile",
    "diagnosis.view_auditevent",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "authtoken.view_token",
    "authtoken.add_token",
    "authtoken.delete_token",
]


def _permissions(names):
    found = []
    for name in names:
        app_label, codename = name.split(".")
        found.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    return found


def ensure_role_groups(**kwargs):
    for group_name, names in ((CLINICIANS, CLINICIAN_PERMISSIONS), (ADMINISTRATORS, ADMINISTRATOR_PERMISSIONS)):
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.set(_permissions(names))


def is_clinical_staff(user):
    return user.is_authenticated and user.has_perm("diagnosis.view_patient")


def is_administrator(user):
    return user.is_authenticated and user.has_perm("ml.manage_models")


def site_of(user):
    profile = getattr(user, "staff_profile", None)
    return profile.site if profile else None
