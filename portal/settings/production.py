"""docker-compose and any real deployment: no default secret key or database, secure cookies,
and behind a TLS-terminating proxy (DJANGO_BEHIND_TLS_PROXY) HTTPS only, with HSTS.
`manage.py check --deploy` passes without a warning with the environment docker-compose.yml sets."""
from .base import *  # noqa: F403
from .base import database, env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DATABASES = {"default": database(env.str("DATABASE_URL"))}
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost"])

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)

if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    # Trust the proxy's X-Forwarded-Proto; only a proxy that overwrites that header may sit in front.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # The container's own health check asks over plain HTTP from inside; it must not be redirected.
    # The same for an orchestrator's readiness probe; /metrics is scraped through the proxy, over HTTPS.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    # Browsers then refuse plain HTTP for this long: start at an hour, as Django's docs advise, and
    # raise it (a year) once HTTPS is known to work. Turn off the subdomain rule if other hosts under
    # the same domain still serve plain HTTP.
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=60 * 60)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
