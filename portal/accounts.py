"""The signed-in user's own API tokens, as a page (the API has the same at /api/v1/tokens/)."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from diagnosis.api import auth
from diagnosis.auditing import client_ip


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
