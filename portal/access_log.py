"""gunicorn's access log without the secret part of a set-password link.

The link (/accounts/set-password/<uid>/<token>/) works until it is used; anyone who reads the web
server's log could use it first. Django's view swaps the token for a session marker and redirects
to .../<uid>/set-password/, so only that first request carries it: the token is replaced by
"<token>" in every field of the log line (request line, path, referer).

With PORTAL_LOG_FORMAT=json gunicorn's lines, access and errors, are JSON objects like Django's
(portal.log_format); the access line, redacted, is the message. gunicorn's master never loads the
Django settings, so the variable is read here."""
import os
import re

from gunicorn.glogging import Logger

from .log_format import json_formatter

LINK_TOKEN = re.compile(r"(/accounts/set-password/[^/\s]+/)(?!set-password/)[^/?\s\"]+")


def without_link_tokens(text):
    return LINK_TOKEN.sub(r"\1<token>", text)


class TokenRedactingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        if os.environ.get("PORTAL_LOG_FORMAT") == "json":
            for handler in (*self.error_log.handlers, *self.access_log.handlers):
                handler.setFormatter(json_formatter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: without_link_tokens(value) if isinstance(value, str) else value for key, value in atoms.items()}
