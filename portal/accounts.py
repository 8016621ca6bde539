"""The signed-in user's own account: their API tokens, as a page (the API has the same at
/api/v1/tokens/), and their password."""
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.urls import reverse_lazy
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from diagnosis.api import auth
from diagnosis.auditing import audit, client_ip
from diagnosis.models import AuditEvent


@require_http_methods(["GET", "POST"])
def api_tokens(request):
    new_token, refusal = None, None
    if request.method == "POST":
        if "revoke" in request.POST:
            if auth.revoke_token(request.user, request.POST["revoke"], ip_address=client_ip(request)):
                messages.success(request, "The token was revoked; systems that use it can no longer sign in with it.")
            return redirect("api_tokens")
        try:
            _, new_token = auth.issue_token(request.user, ip_address=client_ip(request))
        except auth.TokenLimitReached as refused:
            refusal = str(refused)
    # The new secret is shown in this answer only (no-store), never put in a message or the session.
    context = {"tokens": auth.tokens_of(request.user), "new_token": new_token, "refusal": refusal}
    return render(request, "accounts/api_tokens.html", context)


class PasswordChange(auth_views.PasswordChangeView):
    """Change one's own password (Django's form: the old one, the new one twice, the validators);
    Django admin's own page sends here, so every such change is one audited path. Saving it also
    revokes the user's API tokens (diagnosis/signals.py)."""

    template_name = "registration/password_change.html"
    success_url = reverse_lazy("diagnosis:home")

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            audit(self.request, AuditEvent.Action.PASSWORD_CHANGED, details={"user": self.request.user.username, "api_tokens": "revoked"})
        messages.success(self.request, "Your password was changed.")
        return response
