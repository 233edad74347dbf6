"""Secrets are never printed (SPEC §9): tokens, passwords, credentials in a URL (``user:pass@``,
``?token=``) and header values are shown as ``***`` by ``check``, in config errors and in every
log line, ``--debug`` included (websockets logs the headers it sends and receives there).
"""

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_KEYS = frozenset({"auth_token", "token", "password", "headers", "creds"})
"""Config keys whose values are secrets (``headers``: each value, such as Authorization)."""
SECRET_PARAMETERS = frozenset({"token", "access_token", "password", "key", "secret"})
"""URL query parameters whose values are secrets."""

# Patterns, not compiled at import: most runs log nothing to mask (``re`` compiles each on first
# use and keeps it).
_USERINFO = r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@"
_PARAMETER = r"(?P<name>[?&](?:" + "|".join(sorted(SECRET_PARAMETERS)) + r")=)[^&\s#'\"]*"
_HEADER = r"(?P<name>\b(?:Proxy-)?Authorization\b['\"]?\s*[:=,]\s*['\"]?)[^\r\n'\",}]*"
_BEARER = r"(?P<name>\bBearer\s+)(?!realm=)[^\s'\",}]+"


def mask_text(text: str) -> str:
    """``text`` with every secret it shows as ``***``: a URL's password, a secret query
    parameter, an Authorization header's value, a bearer token."""
    if "://" in text:
        text = re.sub(_USERINFO, rf"\g<scheme>\g<user>:{MASK}@", text)
    if "=" in text:
        text = re.sub(_PARAMETER, rf"\g<name>{MASK}", text, flags=re.IGNORECASE)
    lowered = text.lower()
    if "authorization" in lowered:
        text = re.sub(_HEADER, rf"\g<name>{MASK}", text, flags=re.IGNORECASE)
    if "bearer" in lowered:
        text = re.sub(_BEARER, rf"\g<name>{MASK}", text, flags=re.IGNORECASE)
    return text


def mask_url(url: str) -> str:
    """A URL as it may be shown: its password and secret query parameters as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(name, MASK if name.lower() in SECRET_PARAMETERS else value) for name, value in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# Terminal controls (C0 but tab, DEL, C1) in what a log line quotes: a file's name, a peer's
# error text. An ANSI escape there could retitle the terminal or hide lines, and a newline
# start a line of its own that reads as the program's ("aggregator: ERROR: ...").
_CONTROLS = [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)]
_ESCAPED = {code: f"\\x{code:02x}" for code in _CONTROLS} | {0x0A: "\\n"}
_CONTROL_CHARS = frozenset(map(chr, _CONTROLS))


def _escaped(value: object) -> object:
    """A log argument with its control characters escaped; numbers stay numbers."""
    if isinstance(value, int | float) or value is None:
        return value
    text = str(value)
    return text.translate(_ESCAPED) if not _CONTROL_CHARS.isdisjoint(text) else value


class MaskingFilter(logging.Filter):
    """Masks the secrets of every record a handler writes (see ``mask_text``), and escapes
    the control characters of what it quotes (its arguments: names, peers' texts)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_escaped(arg) for arg in record.args)
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install(handlers: list[logging.Handler]) -> None:
    """Mask what ``handlers`` write (the root logger's, set up by the CLI)."""
    for handler in handlers:
        handler.addFilter(MaskingFilter())
