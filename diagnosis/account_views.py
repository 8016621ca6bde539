"""The administrators' user pages: list, create in one screen, change role, site or access.
The rules (who may give which role, who may be changed) live in diagnosis.staff."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import roles, staff
from .forms import AccountForm, NewAccountForm
from .auditing import client_ip


@permission_required("auth.view_user", raise_exception=True)
def account_list(request):
    users = User.objects.select_related("staff_profile__site").prefetch_related("groups").order_by("-is_active", "last_name", "username")
    rows = [{"user": user, "role": roles.role_of(user), "site": getattr(getattr(user, "staff_profile", None), "site", None)} for user in users]
    return render(request, "accounts/account_list.html", {"rows": rows})


def _link_page(request, user, path, created):
    # The link is shown in this answer only (never_cache), like a new API token.
    context = {"account": user, "link": request.build_absolute_uri(path), "created": created}
    return render(request, "accounts/account_link.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required("auth.add_user", raise_exception=True)
def account_create(request):
    form = NewAccountForm(request.POST or None, grantable_roles=staff.grantable_roles(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            user = staff.create_account(actor=request.user, ip_address=client_ip(request), **form.cleaned_data)
        except staff.AccountChangeRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            return _link_page(request, user, staff.set_password_path(actor=request.user, user=user, ip_address=client_ip(request)), created=True)
    return render(request, "accounts/account_form.html", {"form": form, "creating": True}, status=400 if form.errors else 200)


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required("auth.change_user", raise_exception=True)
def account_edit(request, user_id):
    user = get_object_or_404(User.objects.select_related("staff_profile__site"), pk=user_id)
    profile = getattr(user, "staff_profile", None)
    initial = {"site": profile.site if profile else None, "role": roles.role_of(user), "is_active": user.is_active}
    form = AccountForm(request.POST or None, initial=initial, grantable_roles=staff.grantable_roles(request.user))
    if request.method == "POST":
        try:
            if "password_link" in request.POST:
                return _link_page(request, user, staff.set_password_path(actor=request.user, user=user, ip_address=client_ip(request)), created=False)
            if form.is_valid():
                staff.change_account(actor=request.user, user=user, ip_address=client_ip(request), **form.cleaned_data)
                messages.success(request, f"Saved the account of {user.get_full_name() or user.username}.")
                return redirect("diagnosis:account_list")
        except staff.AccountChangeRefused as refusal:
            form.add_error(None, str(refusal))
    context = {"form": form, "account": user, "creating": False}
    return render(request, "accounts/account_form.html", context, status=400 if form.errors else 200)
