"""The one rule for every change to another person's account (role, site, deactivation, a
set-password link, an unlock): the actor must hold every permission the account holds, and nobody
but a superuser acts on a superuser. The portal's user pages (diagnosis.staff) and Django admin
(diagnosis.admin) both ask `refusal`; the API offers no way to change another account.

Otherwise whoever may manage accounts could hand themselves a stronger one: issue a set-password
link for an Administrator, open it, and sign in as them."""
from django.contrib.auth.models import Permission
from django.db.models import Q

MAY_MANAGE = "auth.change_user"


def held_permissions(user):
    """Every permission the account holds through its groups or directly, active or not: Django's
    get_all_permissions answers an empty set for a deactivated account, which reactivation would
    give straight back."""
    if user.is_superuser:
        return {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
    granted = Permission.objects.filter(Q(user=user) | Q(group__user=user)).select_related("content_type").distinct()
    return {f"{p.content_type.app_label}.{p.codename}" for p in granted}


def refusal(actor, target):
    """None when `actor` may change `target`'s account; otherwise the sentence saying why not."""
    if not actor.is_active or not actor.has_perm(MAY_MANAGE):
        return "Your role does not allow managing accounts."
    if actor.is_superuser:
        return None
    if target.is_superuser:
        return "Only a superuser may change a superuser's account."
    if target.pk == actor.pk:
        return "You cannot change your own role, site or access; ask another administrator."
    if held_permissions(target) - held_permissions(actor):
        return f"The account {target.username} holds permissions yours does not; ask someone who holds them to change it."
    return None
