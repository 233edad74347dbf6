"""A WebSocket client on a raw socket, for tests that must behave as no library would: flood
frames and never read, send duplicate headers, claim another Host."""

import base64
import os
import socket
import struct
from pathlib import Path


def handshake(
    address: tuple[str, int], path: str = "/ws", headers: list[tuple[str, str]] | None = None
) -> tuple[socket.socket, bytes]:
    """Open a socket, send a WebSocket upgrade and return it with the answer's head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once when not read
    sock.settimeout(10)
    sock.connect(address)
    sent = headers if headers is not None else [("Host", f"{address[0]}:{address[1]}")]
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in sent)]
    lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
              "Sec-WebSocket-Version: 13", "", ""]  # fmt: skip
    sock.sendall("\r\n".join(lines).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One client frame (clients must mask), FIN set."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    body = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return head + mask + body


def peak_rss_mib(pid: int) -> float:
    """The highest resident set size process ``pid`` has had (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def rss_mib(pid: int) -> float:
    """The resident set size of process ``pid`` now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def raw_get(address: tuple[str, int], path: str, headers: list[tuple[str, str]]) -> int:
    """The status of a plain GET sent exactly with ``headers`` (duplicates and Host included)."""
    with socket.create_connection(address, timeout=10) as sock:
        lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers), "", ""]
        sock.sendall("\r\n".join(lines).encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
