"""Puts gathered in one callback: the readers of the channels put into act once, after the
last put (inotify's callback reads the appends of every file one read of its events reported:
the merge takes them all in one step, and the sink writes one batch)."""

import threading
from collections.abc import Callable


class _Gathering(threading.local):
    """While puts are gathered (``Gathering``) in this thread's loop: what their readers put
    off until the last one."""

    later: list[Callable[[], None]] | None = None


_GATHERING = _Gathering()


class Gathering:
    """``with Gathering():`` the puts made within (inotify's callback: the appends to every
    file one read of its events reported) let their readers act once, after the last of them
    (``after_puts``), rather than after each: the merge takes them all in one step and writes
    one batch. Nested, only the outermost acts. A class rather than a generator-based context
    manager: it is entered for every live wake, where each Python call counts."""

    __slots__ = ("_outer",)

    def __enter__(self) -> None:
        self._outer = _GATHERING.later is None
        if self._outer:
            _GATHERING.later = []

    def __exit__(self, *_: object) -> None:
        if not self._outer:
            return
        later = _GATHERING.later
        _GATHERING.later = None
        for callback in later or ():
            callback()


def after_puts(callback: Callable[[], None]) -> bool:
    """Call ``callback`` (once) after the puts being gathered; False: none are (call it now)."""
    later = _GATHERING.later
    if later is None:
        return False
    if callback not in later:
        later.append(callback)
    return True
