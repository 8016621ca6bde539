"""gunicorn's access log without the secret part of a set-password link.

The link (/accounts/set-password/<uid>/<token>/) works until it is used; anyone who reads the web
server's log could use it first. Django's view swaps the token for a session marker and redirects
to .../<uid>/set-password/, so only that first request carries it: the token is replaced by
"<token>" in every field of the log line (request line, path, referer)."""
import re

from gunicorn.glogging import Logger

LINK_TOKEN = re.compile(r"(/accounts/set-password/[^/\s]+/)(?!set-password/)[^/?\s\"]+")


def without_link_tokens(text):
    return LINK_TOKEN.sub(r"\1<token>", text)


class TokenRedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: without_link_tokens(value) if isinstance(value, str) else value for key, value in atoms.items()}
