"""The security settings every way of running shares (imported by base): the cache the throttles
count in, API tokens, the sign-in lockout and the Content-Security-Policy."""
from datetime import timedelta

import environ

env = environ.Env()

CACHES = {"default": env.cache_url("PORTAL_CACHE_URL", default="locmemcache://")}

# API tokens (django-rest-knox): stored hashed, several per user (one per system), each expiring
# after PORTAL_API_TOKEN_HOURS; a password change or deactivation revokes them (diagnosis.api.auth).
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.int("PORTAL_API_TOKEN_HOURS", default=24)),
    "TOKEN_LIMIT_PER_USER": 10,
    "AUTH_HEADER_PREFIX": "Token",
}

# Sign-in lockout (django-axes) for the portal login, the admin login and the token API: the
# AXES_FAILURE_LIMIT+1-th attempt for a username is refused, right password or not, until the
# cool-off ends or an administrator unlocks it (admin "Access attempts", or
# `manage.py axes_reset_username NAME`). Per username, not per IP: a ward shares one address.
AXES_FAILURE_LIMIT = env.int("PORTAL_LOGIN_FAILURE_LIMIT", default=5)
AXES_LOCKOUT_MINUTES = env.int("PORTAL_LOCKOUT_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_COOLOFF_MESSAGE = (
    f"Too many failed sign-ins for this account; try again in {AXES_LOCKOUT_MINUTES} minutes "
    "or ask an administrator to unlock it."
)
AXES_LOCKOUT_CALLABLE = "portal.errors.locked_out"
# Failed sign-ins are logged with the address the audit trail records (behind PORTAL_PROXY_COUNT proxies too).
AXES_CLIENT_IP_CALLABLE = "ml.audit.client_ip"

# Content-Security-Policy (django-csp): scripts and styles only from the portal's own static files,
# never inline; images may also be data: and blob: URLs (previews of a chosen file).
# The film viewer (static/viewer/, Cornerstone3D) decodes DICOM in a web worker served from the same
# static folder (worker-src 'self', no blob: workers), and its JPEG 2000, JPEG-LS and other codecs are
# WebAssembly, which may only be compiled under 'wasm-unsafe-eval': that allows WebAssembly and
# nothing else, not JavaScript's eval() nor inline script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'wasm-unsafe-eval'"],
        "worker-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# axes.W006 asks to lock by IP address too; a hospital ward signs in from one address, so one
# person's typos would lock out the whole ward. The lockout is per username, which a client cannot
# rotate to get around it (the User-Agent and cookie rotation the check warns about do not apply).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
