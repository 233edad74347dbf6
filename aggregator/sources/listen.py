"""What the socket sources share: addresses, peer names, and Unix socket files."""

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aggregator.errors import StartupError

log = logging.getLogger(__name__)

T = TypeVar("T")


def peer_name(address: Any) -> str:
    """A peer's address as ``HOST:PORT``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def bind_error(name: str, where: object, error: OSError) -> StartupError:
    return StartupError(f"sources.{name}: cannot listen on {where}: {error.strerror or error}")


def clear_stale_socket(name: str, path: Path, kind: int) -> None:
    """Remove a socket file that no process listens on any more; refuse anything else.

    A live socket means another program (or another aggregator) is listening: taking its path
    would steal its traffic. A regular file is the user's: never deleted.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"sources.{name}: {path} exists and is not a socket")
    if kind == socket.SOCK_STREAM:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                pass  # nobody listens: stale
            else:
                raise StartupError(f"sources.{name}: {path} is in use by another program")
    log.info("sources.%s: replacing the stale socket file %s", name, path)
    path.unlink()


async def bind_unix_socket(
    name: str, path: Path, kind: int, mode: int, bind: Callable[[], Awaitable[T]]
) -> T:
    """Bind a Unix socket at ``path`` with ``bind()``: a stale file is replaced first, the file
    gets ``mode`` after; StartupError names the source and path when any step fails."""
    clear_stale_socket(name, path, kind)
    try:
        bound = await bind()
    except OSError as error:
        raise bind_error(name, path, error) from error
    try:
        os.chmod(path, mode)
    except OSError as error:
        raise StartupError(
            f"sources.{name}: cannot set mode {mode:04o} on {path}: {error.strerror}"
        ) from error
    return bound


def remove_socket_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
