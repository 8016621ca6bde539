"""Accounts managed in the portal's own pages: an administrator creates a clinician or an
administrator at a site with a role in one step, changes their role or site, deactivates them.

The escalation guard is Django admin's (roles.grantable_groups): a role can be given only by
someone who holds every permission it grants, so an Administrator can never make a superuser or
anything above themselves. Who may be changed at all is diagnosis.account_rule: the actor holds
every permission the account holds, nobody but a superuser changes a superuser, and nobody changes
their own role, site or access here (another administrator must). Every write is in the audit trail."""
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from . import account_rule, password_links, roles, usernames
from .models import AuditEvent, StaffProfile
from .services import changes_between, record_audit


class AccountChangeRefused(Exception):
    """A change an administrator may not make; the message says why in one sentence."""


def grantable_roles(actor):
    """The role names the actor may give, in the order a form offers them."""
    grantable = set(roles.grantable_groups(actor).filter(name__in=[roles.CLINICIANS, roles.ADMINISTRATORS]).values_list("name", flat=True))
    return [name for name in (roles.CLINICIANS, roles.ADMINISTRATORS) if name in grantable]


def _check_role(actor, role):
    if role not in grantable_roles(actor):
        raise AccountChangeRefused(f"You may not give the role {role}: it holds permissions your own account does not have.")


def _check_may_change(actor, user):
    refused = account_rule.refusal(actor, user)
    if refused:
        raise AccountChangeRefused(refused)


def _set_role(user, role):
    user.groups.set([Group.objects.get(name=role)])
    # Administrators also reach Django admin (sites, the audit trail); clinicians never do.
    user.is_staff = role == roles.ADMINISTRATORS


def create_account(*, actor, username, first_name, last_name, email, site, role, ip_address=None):
    """A new account with its role and site and no usable password: the person sets their own
    through the one-time link (set_password_path). Returns the user."""
    if not actor.has_perm("auth.add_user"):
        raise AccountChangeRefused("Your role does not allow creating accounts.")
    _check_role(actor, role)
    refused = usernames.refusal(username.strip())
    if refused:
        raise AccountChangeRefused(refused)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username.strip(), email=email.strip(), first_name=first_name.strip(), last_name=last_name.strip())
            _set_role(user, role)
            user.save()
            StaffProfile.objects.create(user=user, site=site)
            record_audit(actor, AuditEvent.Action.USER_CREATED, details={"user": user.username, "role": role, "site": str(site)}, ip_address=ip_address)
    except IntegrityError as error:
        raise AccountChangeRefused(f"The username {username.strip()} is already taken.") from error
    return user


def change_account(*, actor, user, site, role, is_active, ip_address=None):
    """Change a user's role, site or access; one audit row says what changed."""
    _check_may_change(actor, user)
    _check_role(actor, role)
    profile, _ = StaffProfile.objects.get_or_create(user=user)
    before = {"role": roles.role_of(user), "site": str(profile.site) if profile.site else None, "is_active": user.is_active}
    changes = changes_between(before, {"role": role, "site": str(site), "is_active": is_active})
    if not changes:
        return user
    with transaction.atomic():
        _set_role(user, role)
        user.is_active = is_active
        user.save()
        profile.site = site
        profile.save()
        record_audit(actor, AuditEvent.Action.USER_CHANGED, details={"user": user.username, "changes": changes}, ip_address=ip_address)
    return user


def set_password_path(*, actor, user, ip_address=None):
    """The path of a link with which the user sets their own password, once: it stops working after
    PASSWORD_RESET_TIMEOUT and with any change of the account's state (diagnosis.password_links)."""
    _check_may_change(actor, user)
    record_audit(actor, AuditEvent.Action.USER_PASSWORD_LINK, details={"user": user.username}, ip_address=ip_address)
    return password_links.issue_link_path(user)
