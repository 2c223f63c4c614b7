"""What the web server does for safety, on every request: limits, sign-in and response headers.

Flask only (no Dash): ``install(server, settings, script_hashes)`` is called by the app factory.

- **Request size**: bodies over ``ATTN_MAX_REQUEST_KB`` are answered 413 with a plain message,
  before they are read (Flask's ``MAX_CONTENT_LENGTH``).
- **Proxies**: with ``ATTN_TRUSTED_PROXIES=N``, the client address and scheme come from the last N
  proxies' ``X-Forwarded-For`` / ``X-Forwarded-Proto`` (werkzeug's ``ProxyFix``); otherwise those
  headers are ignored.
- **Sign-in** (``ATTN_AUTH``, off by default): ``basic`` checks HTTP basic credentials against the
  users file (``services.users``: werkzeug's scrypt hashes); ``proxy`` trusts the user header
  (``ATTN_AUTH_HEADER``, default ``X-Forwarded-User``) set by an authenticating reverse proxy, only
  from the addresses in ``ATTN_AUTH_PROXY_FROM`` and only with proof that only the proxy has (every
  local account can reach 127.0.0.1): the shared secret ``ATTN_PROXY_SECRET`` in the
  ``X-Attention-Proxy-Secret`` header (compared in constant time), and/or a Unix socket only the proxy
  can reach (``ATTN_AUTH_PROXY_FROM=unix``). A user header without that proof is refused (403) and
  logged, never believed. Every route needs sign-in except ``/healthz``.
  Failed basic sign-ins are counted per user name (``ATTN_SIGNIN_FAILURES``) and per client address
  (``ATTN_SIGNIN_FAILURES_PER_ADDRESS``), 429 past either, so a guesser cannot make the server hash
  passwords all day, a guess at one name locks out that name only (not everyone behind the same proxy),
  and a spray of names from one address is still limited. A name and password this process already
  accepted pass without hashing and without those counts.
- **Headers** on every response: a Content-Security-Policy that allows this origin only (Dash's
  inline scripts by their hashes, ``data:`` images for Plotly), ``frame-ancestors 'none'`` and
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, and
  a ``Server`` header without a version.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence

from flask import Flask, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..config import Settings
from . import ratelimit
from .users import UserStore

log = logging.getLogger(__name__)

SERVER_NAME = "attention-explorer"
HEALTH_PATH = "/healthz"
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-IP")

STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def content_security_policy(script_hashes: Sequence[str] = (), frame_ancestors: Sequence[str] = ()) -> str:
    """The policy: everything from this origin only, no plugins, no framing (or framing by the pages
    ``frame_ancestors`` names: ``ATTN_FRAME_ANCESTORS``, e.g. a notebook's ``show_dashboard()``).

    Scripts: files from this origin plus Dash's inline scripts by hash (``Dash.csp_hashes()``), no
    ``unsafe-inline`` or ``unsafe-eval``. Styles: this origin and inline styles (React and Plotly set
    ``style`` attributes and add ``<style>`` elements). Images: this origin and ``data:`` / ``blob:``
    (Plotly draws heatmaps and image traces as data URLs; its download button makes a blob).
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": list(frame_ancestors) or ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def hide_server_banner() -> None:
    """gunicorn names itself in a ``Server`` header the app cannot remove; it reads the name from a
    module global when each response starts, so a worker that runs this app sends ours instead."""
    wsgi = sys.modules.get("gunicorn.http.wsgi")
    if wsgi is not None and getattr(wsgi, "SERVER", None) != SERVER_NAME:
        wsgi.SERVER = SERVER_NAME


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def direct_loopback_request() -> bool:
    """A request from this machine that no proxy forwarded (a proxy on the same host would make every
    visitor look local, so any forwarding header disqualifies it)."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    return is_loopback(request.remote_addr)


def may_see_details() -> bool:
    """Whether ``/healthz`` may show its details: to signed-in users and direct loopback clients."""
    return bool(getattr(g, "attn_user", None)) or direct_loopback_request()


class SignIn:
    """Who is asking, for ``ATTN_AUTH`` basic or proxy."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth
        self.header = settings.auth_header
        self.proxy_from = {a.strip() for a in settings.auth_proxy_from if a.strip()}
        self.secret = settings.proxy_secret.encode("ascii")
        self.secret_header = settings.proxy_secret_header
        self.failures = settings.signin_failures
        self.address_failures = settings.signin_failures_per_address
        self.storage = ratelimit.storage_uri(settings)
        self.users = UserStore(settings.users_file) if self.mode == "basic" else None
        if self.users is not None:
            self.users.users()
            if self.users.error:
                log.error("sign-in: %s (%s): nobody can sign in until it is fixed", self.users.error,
                          settings.users_file)

    @staticmethod
    def _peer() -> str:
        """The address that connected to this server ('' for a Unix socket), whatever proxies say."""
        original = request.environ.get("werkzeug.proxy_fix.orig", {})
        address = original.get("REMOTE_ADDR", request.environ.get("REMOTE_ADDR"))
        return address or ""

    def from_proxy(self) -> bool:
        """Whether the connection comes from an address in ``ATTN_AUTH_PROXY_FROM`` (``unix``: gunicorn's
        Unix socket, where the connecting side has no address)."""
        peer = self._peer()
        return (peer in self.proxy_from) if peer else ("unix" in self.proxy_from)

    def secret_matches(self) -> bool:
        """Whether the request carries the proxy's secret (always true when none is configured, which
        the settings allow only with ``ATTN_AUTH_PROXY_FROM=unix``). Compared in constant time."""
        if not self.secret:
            return True
        given = request.headers.get(self.secret_header, "")
        # read once, then gone from the request: nothing after sign-in (a view, a log, an error) can see it
        request.environ.pop("HTTP_" + self.secret_header.upper().replace("-", "_"), None)
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.secret)

    def user(self) -> tuple[str | None, tuple[str, int] | None]:
        """(the signed-in user or None, why to wait when too many sign-ins failed: ``("name", seconds)``
        for this name, ``("address", seconds)`` for this address; None when nothing is to wait for)."""
        if self.mode == "proxy":
            name = request.headers.get(self.header, "").strip()[:128]
            if not self.from_proxy():
                if name:
                    log.warning("proxy sign-in refused: a %s header from %s, which is not the proxy", self.header,
                                self._peer() or "a Unix socket")
                return None, None
            if not self.secret_matches() and name:
                log.warning("proxy sign-in refused: a %s header without the proxy's secret (from %s)", self.header,
                            self._peer() or "a Unix socket")
                return None, None
            return (name or None), None
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username:
            return None, None
        name, password = auth.username[:128], auth.password or ""
        if self.users.remembered(name, password):
            return name, None  # signed in before in this process: a guesser's failures never lock them out
        # Failures are counted per name AND per address: a guesser at one name locks out only that name
        # (not everyone behind the same proxy), and a spray of names from one address is still limited.
        address = request.remote_addr or "unknown"
        for scope, limit, who in (("name", self.failures, name), ("address", self.address_failures, address)):
            wait = ratelimit.peek(limit, f"signin-failure-{scope}", who, self.storage)
            if wait:
                return None, (scope, wait)
        if self.users.verify(name, password):
            return name, None
        log.warning("sign-in failed for %r from %s", name[:64], address)
        ratelimit.check(self.failures, "signin-failure-name", name, self.storage)
        ratelimit.check(self.address_failures, "signin-failure-address", address, self.storage)
        return None, None

    def refuse(self, wait: tuple[str, int] | None) -> Response:
        if wait:
            scope, seconds = wait
            where = "for this user name" if scope == "name" else "from your address"
            response = plain(f"Too many failed sign-ins {where}: wait {seconds} s and try again.", 429)
            response.headers["Retry-After"] = str(seconds)
            return response
        if self.mode == "proxy":
            return plain("Sign in through this server's front door (its proxy) to use Attention Explorer.", 403)
        response = plain("Sign in to use Attention Explorer: ask the person who runs this server for an account.", 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="Attention Explorer", charset="UTF-8"'
        return response


def plain(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def install(server: Flask, settings: Settings, script_hashes: Callable[[], Sequence[str]] = tuple) -> None:
    """Limits, sign-in and headers for ``server`` (see the module's docstring)."""
    server.config["MAX_CONTENT_LENGTH"] = settings.max_request_kb * 1024
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=n, x_proto=n)
    hide_server_banner()
    sign_in = SignIn(settings) if settings.auth else None
    frames = tuple(settings.frame_ancestors)
    base_policy = content_security_policy(frame_ancestors=frames)

    @server.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return plain(f"The request is too large: this server accepts at most {settings.max_request_kb:,} KB. "
                     "Shorten the text and try again.", 413)

    @server.before_request
    def require_sign_in():
        g.attn_user = None
        if sign_in is None:
            return None
        user, wait = sign_in.user()
        g.attn_user = user
        if user is None and request.path != HEALTH_PATH:
            return sign_in.refuse(wait)
        return None

    @server.after_request
    def security_headers(response: Response) -> Response:
        for name, value in STATIC_HEADERS.items():
            if name == "X-Frame-Options" and frames:
                continue  # framing allowed by frame-ancestors (which browsers obey before this header)
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            try:
                hashes = list(script_hashes())
            except Exception:  # noqa: BLE001 - never fail a response over its policy
                log.exception("could not compute the page's script hashes")
                hashes = []
            response.headers["Content-Security-Policy"] = content_security_policy(hashes, frames)
        else:
            response.headers.setdefault("Content-Security-Policy", base_policy)
        if not request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
            response.headers["Server"] = SERVER_NAME  # Werkzeug's development server names its version
        return response
