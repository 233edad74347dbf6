"""``HOST:PORT``: how listen and peer addresses are written, read and judged, in one place."""

import ipaddress
import re


class BadHost(ValueError):
    """The port is fine but the host is neither an IP address nor a host name."""


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets) as (host, port); ValueError if it is not one,
    ``BadHost`` if only its host is wrong."""
    host, sep, port = text.rpartition(":")
    if not (sep and host and port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):  # compiled on first use, not at import
            raise BadHost(f"not a valid host: {host!r}") from None
    return host, int(port)


def is_loopback(listen: str) -> bool:
    """Whether a ``HOST:PORT`` listens on this machine only."""
    return names_loopback(listen.rpartition(":")[0])


def names_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this machine's
    loopback: ``localhost`` or an address in 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
