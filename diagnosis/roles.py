"""Two roles, held as Django groups so that permissions stay the single source of truth.

Clinicians work with patients, scans and results at their own site. Administrators can do all of
that at every site, and also manage users, sites and model versions.

What a role may do at all is a Django permission the group grants (views ask with
`permission_required`, the API with `HasRolePermission`). Which records it may do it to is the
per-site rule, registered below with django-rules as an object permission; it asks the one selector
that scopes patients, so the rule is written once.
"""
import rules
from django.contrib.auth.models import Group, Permission

from . import selectors

CLINICIANS = "Clinicians"
ADMINISTRATORS = "Administrators"

CLINICIAN_PERMISSIONS = [
    "diagnosis.view_patient",
    "diagnosis.add_patient",
    # Correcting a patient's names, birth date, sex or record number (the API's PATCH).
    "diagnosis.change_patient",
    "diagnosis.view_scan",
    "diagnosis.add_scan",
    "diagnosis.view_prediction",
    "diagnosis.add_review",
]
ADMINISTRATOR_PERMISSIONS = CLINICIAN_PERMISSIONS + [
    "diagnosis.view_every_site",
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
    # API tokens: see and revoke anyone's (never create one: that would act as the user).
    "knox.view_authtoken",
    "knox.delete_authtoken",
    # Sign-in lockouts: see them and unlock an account by deleting its access attempts.
    "axes.view_accessattempt",
    "axes.delete_accessattempt",
    "axes.view_accesslog",
    # The PACS and modalities that may send films (pacs.DicomNode), and what they sent.
    "pacs.view_dicomnode",
    "pacs.add_dicomnode",
    "pacs.change_dicomnode",
    "pacs.delete_dicomnode",
    "pacs.view_receivedinstance",
    "pacs.view_resultsend",
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


@rules.predicate
def patient_is_visible(user, patient):
    return patient is not None and selectors.patients_visible_to(user).filter(pk=patient.pk).exists()


@rules.predicate
def scan_is_visible(user, scan):
    return scan is not None and selectors.scans_visible_to(user).filter(pk=scan.pk).exists()


# Object permissions only: without an object Django's ModelBackend answers from the groups.
rules.add_perm("diagnosis.view_patient", patient_is_visible)
rules.add_perm("diagnosis.view_scan", scan_is_visible)


def grantable_groups(user):
    """The groups whose every permission the user already holds: granting one gives nothing new.
    Django admin and the portal's own user pages both ask here, so an Administrator can never
    hand out more than they hold (and nobody but a superuser makes a superuser)."""
    held = user.get_all_permissions()
    return Group.objects.filter(pk__in=[
        group.pk for group in Group.objects.prefetch_related("permissions__content_type")
        if {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()} <= held
    ])


def role_of(user):
    """The role group a user holds (Administrators before Clinicians), or None."""
    names = {group.name for group in user.groups.all()}
    return next((name for name in (ADMINISTRATORS, CLINICIANS) if name in names), None)
