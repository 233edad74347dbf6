"""The plain HTTP side of the port: the page's files, /healthz, /metrics, and who may come in.

The page's files are read from the package once, when the first client comes, into memory: a
request path is only ever a key into that table, never a path on the filesystem.
"""

from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs

from aggregator.config.addresses import names_loopback

if TYPE_CHECKING:
    from websockets.http11 import Request

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page runs only its own script and style, talks only to this port, and cannot be framed."""

ASSET_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

PAGE = "/"
PAGE_FILE = "index.html"
FAVICON = "/favicon.svg"


class Asset(NamedTuple):
    """A file of the page, as served."""

    content_type: str
    body: bytes


def load_assets() -> dict[str, Asset]:
    """The page's files by request path: ``/`` is index.html, the rest by their names."""
    from importlib import resources  # not at start: the first client needs the page (server.py)

    assets: dict[str, Asset] = {}
    for entry in resources.files("aggregator.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in ASSET_TYPES:
            path = PAGE if entry.name == PAGE_FILE else f"/{entry.name}"
            assets[path] = Asset(ASSET_TYPES[suffix], entry.read_bytes())
    if FAVICON in assets:
        assets["/favicon.ico"] = assets[FAVICON]  # asked for by clients that ignore the link
    return assets


SINGLE_HEADERS = ("Host", "Origin", "Authorization")
"""Headers a request may carry once: two of them are a request no browser makes (400)."""


def host_name(header: str) -> str:
    """The name of a ``Host`` header without its port: ``[::1]:80`` → ``::1``."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class Gate:
    """Who may use /ws, /metrics and the page: a token (if one is set) and an allowed Origin;
    and, on a loopback listener, a Host that names this machine (no DNS rebinding)."""

    def __init__(
        self,
        token: str,
        allowed_origins: list[str],
        loopback: bool = False,
        allowed_hosts: list[str] | None = None,
    ) -> None:
        self._token = token.encode()
        self._allowed_origins = set(allowed_origins)
        self._loopback = loopback
        self._allowed_hosts = {host.lower() for host in allowed_hosts or ()}

    @staticmethod
    def duplicated(request: "Request") -> str | None:
        """The first of ``SINGLE_HEADERS`` the request carries more than once, if any."""
        for name in SINGLE_HEADERS:
            if len(request.headers.get_all(name)) > 1:
                return name
        return None

    def host_allowed(self, request: "Request") -> bool:
        """On a loopback listener, only a Host that is loopback, ``localhost`` or listed in
        ``allowed_hosts``: a page of another site whose name was made to resolve to
        127.0.0.1 (DNS rebinding) sends its own name, and is refused. Others: any Host."""
        if not self._loopback:
            return True
        name = host_name(request.headers.get("Host", "")).lower()
        return names_loopback(name) or name in self._allowed_hosts

    def origin_allowed(self, request: "Request") -> bool:
        """No Origin (not a browser), the page's own origin, or one listed in the config."""
        origin = request.headers.get("Origin")
        if origin is None or origin in self._allowed_origins:
            return True
        host = request.headers.get("Host", "")
        return origin in (f"http://{host}", f"https://{host}")

    @property
    def needs_token(self) -> bool:
        return bool(self._token)

    def authorised(self, request: "Request", query: str) -> bool:
        """The token as ``Authorization: Bearer`` or ``?token=``, compared in constant time."""
        if not self._token:
            return True
        import hmac  # with the first request that must show a token: hashlib's set-up is 5 M

        return hmac.compare_digest(offered_token(request, query).encode(), self._token)

    def refusal(self, request: "Request", query: str) -> str:
        """What a 401 says: that a token is needed, or that the one sent is not it."""
        if offered_token(request, query):
            return "the token is wrong: check the token in the address (?token=) or the header\n"
        return (
            "a token is required: open this address with ?token=TOKEN, or send "
            "Authorization: Bearer TOKEN\n"
        )


def offered_token(request: "Request", query: str) -> str:
    """The token a request offers (Authorization: Bearer, else ?token=); "" for none."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return (parse_qs(query).get("token") or [""])[-1]
