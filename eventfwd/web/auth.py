"""Who may use the console, and proof that a form was ours (CSRF).

Without `EVENTFWD_WEB_SECRET` the console trusts whoever reaches it (it binds loopback only, or
sits behind its host app's login when mounted). With it, every request carries the secret: the
login form sets a session cookie (an HMAC of the secret, never the secret itself), scripts send
`Authorization: Bearer <secret>` or `X-Eventfwd-Secret: <secret>`. Every POST carries a token
equal to the `eventfwd_csrf` cookie (double submit; the cookie is SameSite=Strict and HttpOnly),
and a cross-origin `Origin` header is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from eventfwd.web.http import Request

SESSION_COOKIE = "eventfwd_session"
CSRF_COOKIE = "eventfwd_csrf"
WHO_COOKIE = "eventfwd_who"
CSRF_FIELD = "csrf"


class Guard:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret

    @property
    def required(self) -> bool:
        return self.secret is not None

    def _mac(self, what: str) -> str:
        assert self.secret is not None
        return hmac.new(self.secret.encode(), what.encode(), hashlib.sha256).hexdigest()

    def session_value(self) -> str:
        return self._mac("eventfwd-web-session")

    def secret_matches(self, given: str) -> bool:
        return self.secret is not None and hmac.compare_digest(given.encode(), self.secret.encode())

    def authorized(self, req: Request) -> bool:
        if self.secret is None:
            return True
        auth = req.header("Authorization") or ""
        if auth.startswith("Bearer ") and self.secret_matches(auth[7:].strip()):
            return True
        if self.secret_matches(req.header("X-Eventfwd-Secret") or ""):
            return True
        return hmac.compare_digest(req.cookies.get(SESSION_COOKIE, ""), self.session_value())

    def signed_name(self, name: str) -> str:
        key = self._mac("eventfwd-web-who") if self.secret else ""
        return f"{name}.{hmac.new(key.encode(), name.encode(), hashlib.sha256).hexdigest()[:16]}"

    def who(self, req: Request) -> str:
        """Who acts, for the audit log: the host app's user, the login name, or the address."""
        if req.environ.get("REMOTE_USER"):
            return str(req.environ["REMOTE_USER"])
        cookie = req.cookies.get(WHO_COOKIE, "")
        name = cookie.rpartition(".")[0]
        if self.secret and name and hmac.compare_digest(cookie, self.signed_name(name)):
            return name
        return f"web@{req.environ.get('REMOTE_ADDR', '?')}"

    @staticmethod
    def csrf_token(req: Request) -> tuple[str, bool]:
        """The token forms carry, and whether it is new (then it must be set as a cookie)."""
        token = req.cookies.get(CSRF_COOKIE, "")
        if len(token) >= 32:
            return token, False
        return secrets.token_urlsafe(32), True

    @staticmethod
    def csrf_ok(req: Request) -> bool:
        cookie = req.cookies.get(CSRF_COOKIE, "")
        given = req.form.get(CSRF_FIELD, "")
        if len(cookie) < 32 or not hmac.compare_digest(cookie.encode(), given.encode()):
            return False
        origin = req.header("Origin")
        if origin and origin != "null":
            host = req.header("Host") or req.environ.get("SERVER_NAME", "")
            return urlsplit(origin).netloc == host
        return True
