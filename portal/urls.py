from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from diagnosis.password_links import SetPasswordView

from . import accounts, health, metrics_export


@login_not_required
def favicon(request):
    """Browsers ask for /favicon.ico on every page: send them to the icon WhiteNoise serves."""
    return HttpResponsePermanentRedirect(static("favicon.ico"))


# JSON under /api/, a standalone page elsewhere (portal.errors).
handler400 = "portal.errors.bad_request"
handler403 = "portal.errors.permission_denied"
handler404 = "portal.errors.page_not_found"
handler500 = "portal.errors.server_error"

admin.site.site_header = "Chest X-ray portal administration"

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/tokens/", accounts.api_tokens, name="api_tokens"),
    path("accounts/password/", accounts.PasswordChange.as_view(), name="password_change"),
    # Django admin's own password page would change it without an audit row: it sends here instead.
    path("admin/password_change/", RedirectView.as_view(pattern_name="password_change")),
    # The one-time link an administrator gives a new (or locked-out) user to set their own password.
    path("accounts/set-password/<uidb64>/<token>/", SetPasswordView.as_view(), name="set_password"),
    path("accounts/set-password/done/", auth_views.PasswordResetCompleteView.as_view(template_name="registration/set_password_done.html"), name="set_password_done"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("diagnosis.api.urls")),
    path("api/v1/", include("pacs.api")),
    path("dicomweb/", include("pacs.dicomweb")),
    path("", include("pacs.urls")),
    path("models/", include("ml.urls")),
    # For load balancers and Prometheus: no login, no patient data (portal/health.py, portal/metrics_export.py).
    path("healthz", health.healthz, name="health"),
    path("readyz", health.readyz, name="ready"),
    path("metrics", metrics_export.metrics_view, name="metrics"),
    path("favicon.ico", favicon),
    path("", include("diagnosis.urls")),
]
