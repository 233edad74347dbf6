"""Follows one open file of a source until it ends (``--no-follow``), its path names another
file (rotation), or it is gone: reads what was appended at each change (inotify) or poll, and
hands the records on.

This is the live path: a wake costs a read of what was appended and one stat of the path,
nothing more (the path was resolved when it was watched, not at each wake). While the follower
waits idle, an append is read in inotify's callback instead, without waking it (``LiveRead``).
"""

import asyncio
import logging
import time
from enum import Enum
from typing import TYPE_CHECKING

from aggregator.config import FileSourceConfig
from aggregator.record.record import Batch
from aggregator.sources.file.readers import Readers
from aggregator.sources.file.rotated import RotatedFiles
from aggregator.sources.file.tailer import FileTailer
from aggregator.sources.lanes import LaneOutlet

if TYPE_CHECKING:  # inotify is loaded only to follow
    from aggregator.sources.file.watch import Changed, Watcher

log = logging.getLogger(__name__)

LOOK_EVERY = 1.0
"""Seconds: a watched path is looked at (a stat) at least this often while data comes, and at
once after inotify reports a rename, deletion or creation of its name. Inotify says nothing of
a directory above it renamed."""
POLL_MIN, POLL_MAX = 0.01, 0.25
"""Unwatched files: seconds between looks at a quiet file, backing off while it stays quiet."""


class Outcome(Enum):
    """Why following a file stopped."""

    ENDED = "ended"  # read through (--no-follow)
    REPLACED = "replaced"  # the path names another file now
    GONE = "gone"  # deleted, and not recreated within rotate_wait


class Follower:
    """Follows the files of one source, one ``follow`` call for each."""

    def __init__(
        self,
        name: str,
        config: FileSourceConfig,
        readers: Readers,
        rotated: RotatedFiles,
        keeps_positions: bool,
    ) -> None:
        self.name = name
        self.keeps_positions = keeps_positions  # else (``tail``) records go without them
        self.config = config
        self._readers = readers
        self._rotated = rotated
        self.watcher: Watcher | None = None  # set while following, with inotify
        self.group: asyncio.TaskGroup | None = None  # the source's, for the copies' readers
        self.live_reads = 0
        """Appends read in inotify's callback (``LiveRead``), counted."""

    async def follow(
        self, tailer: FileTailer, outlet: LaneOutlet, live: bool, changed: "Changed | None"
    ) -> Outcome:
        """Read until the end (``--no-follow``), a rotation, or a deletion."""
        alarm = Alarm(changed) if changed is not None else None
        reader = LiveRead(self, tailer, outlet) if changed is not None else None
        try:
            return await self._follow(tailer, outlet, live, changed, alarm, reader)
        finally:
            if alarm is not None:
                alarm.cancel()

    async def _follow(
        self,
        tailer: FileTailer,
        outlet: LaneOutlet,
        live: bool,
        changed: "Changed | None",
        alarm: "Alarm | None",
        reader: "LiveRead | None",
    ) -> Outcome:
        pause = POLL_MIN
        missing_since: float | None = None
        names, looked = -1, 0.0  # ``changed.names`` and the time when the path was looked at
        last_data = time.monotonic()
        follow, rotate_wait = self.config.follow, self.config.rotate_wait
        while True:
            if changed is not None:
                changed.clear()  # before reading: a change after this wakes the wait below
            read = await tailer.read()
            if read.moved:
                pause, missing_since, last_data = POLL_MIN, None, time.monotonic()
                if (copied := tailer.truncated_from) is not None and self.group is not None:
                    tailer.truncated_from = None
                    self._readers.truncated(copied)
                    self.group.create_task(
                        self._rotated.read_copy(tailer, copied, outlet),
                        name=f"copy:{self.name}:{copied}",
                    )
                if read.records:
                    position = tailer.checkpoint() if self.keeps_positions else None
                    await hand_on(tailer, outlet, read.records, live, position)
                if not read.drained or not follow or not live:
                    continue  # more to read; or read on until a read finds nothing
            if not follow:
                final = tailer.flush()
                await outlet.send(final, live=False, final=True, position=tailer.checkpoint())
                return Outcome.ENDED
            if not live:  # read through what existed: from now on the lane is live
                live = True
                await outlet.send([], live=True)
            decoder = tailer.decoder
            now = time.monotonic()
            held_until = decoder.deadline  # a multiline record held, and when it must go
            if held_until is not None and now >= held_until:
                expired = tailer.expire()
                if expired:
                    await hand_on(tailer, outlet, expired, live, tailer.checkpoint())
                    now = time.monotonic()
            watched = self.watcher is not None and self.watcher.is_watched(tailer.path)
            at_path: bool | None = True  # unless a look says otherwise
            if changed is None or not watched or missing_since is not None:
                at_path = tailer.at_path()
            elif changed.names != names or now - looked >= LOOK_EVERY:
                names, looked = changed.names, now
                at_path = tailer.at_path()
            if at_path is False:
                return Outcome.REPLACED
            if at_path is None:
                missing_since = missing_since or now
                if now - missing_since >= rotate_wait:
                    return Outcome.GONE
            deadline = decoder.deadline
            if missing_since is not None:  # nothing may ever change again: bound the wait
                bound = missing_since + rotate_wait
                deadline = bound if deadline is None else min(deadline, bound)
            close_idle = self.config.close_idle
            if watched and close_idle and not tailer.suspended:
                if now - last_data >= close_idle:
                    await tailer.suspend()  # a change wakes it: no descriptor needed meanwhile
                elif alarm is not None:
                    alarm.ring_by(last_data + close_idle)  # wake to close it
            if reader is not None and watched and deadline is None and missing_since is None:
                assert changed is not None
                reader.look_by = looked + LOOK_EVERY
                await changed.wait_reading(reader)
                last_data = reader.taken(last_data)
            else:
                await wait_for_change(changed if watched else None, pause, deadline)
            if tailer.suspended and not await tailer.reopen():
                if tailer.at_path() is False:  # deleted while closed, and made again
                    return Outcome.REPLACED
                log.info("%s: deleted while closed; stopped following it", tailer.path)
                return Outcome.GONE
            pause = min(pause * 2, POLL_MAX)


class LiveRead:
    """A live append read, decoded and handed on in inotify's callback while its follower
    waits with nothing else to do (``Changed.wait_reading``), without a wake of the
    follower's task. Anything else wakes the follower, whose loop does it as before: a look
    at the path due (``look_by``), no room to hand records on at once, a large read, a
    truncation, a file closed while quiet, a multiline record held (its timeout is the
    follower's), an error (raised in the follower's task)."""

    def __init__(self, follower: Follower, tailer: FileTailer, outlet: LaneOutlet) -> None:
        self.follower = follower
        self.tailer = tailer
        self.outlet = outlet
        self.look_by = 0.0
        """Monotonic seconds: the path is due a look then (``LOOK_EVERY``): the follower's."""
        self.last_data: float | None = None  # when data was last read here
        self.error: Exception | None = None

    def __call__(self) -> bool:
        """Read what was appended, and hand its records on. False wakes the follower: it must
        read (nothing was taken), or a multiline record is now held (its timeout is the
        follower's; what was read is handed on already), or an error came (``error``, for
        the follower to raise)."""
        now = time.monotonic()
        outlet, tailer = self.outlet, self.tailer
        if now >= self.look_by or not outlet.room:
            return False
        position = tailer.position
        try:
            records = tailer.read_now()
            if records is None:
                return False
            if tailer.position != position:
                self.last_data = now
                self.follower.live_reads += 1
            if records:
                checkpoint = tailer.checkpoint() if self.follower.keeps_positions else None
                outlet.send_now(records, position=checkpoint)
        except Exception as error:  # raised in the follower's task, not inotify's callback
            self.error = error
            return False
        return tailer.decoder.deadline is None

    def taken(self, last_data: float) -> float:
        """After the wait: when data was last read, here or before (``last_data``); an error
        met here is raised."""
        error, self.error = self.error, None
        if error is not None:
            raise error
        if self.last_data is not None and self.last_data > last_data:
            return self.last_data
        return last_data


class Alarm:
    """Sets an event by a time. Armed once, and again only once it rang (early, if data came
    meanwhile: the caller looks and arms it again): one timer a ``close_idle``, not a timer
    armed and cancelled at each wake."""

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event
        self._timer: asyncio.TimerHandle | None = None

    def ring_by(self, when: float) -> None:
        """Ring at ``when`` (monotonic seconds), unless armed already (for an earlier time)."""
        if self._timer is None:
            delay = max(0.0, when - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._ring)

    def _ring(self) -> None:
        self._timer = None
        self._event.set()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def hand_on(
    tailer: FileTailer, outlet: LaneOutlet, records: Batch, live: bool, position: object
) -> None:
    """Send records, noting meanwhile that the reader is held back (``sending_since``)."""
    tailer.sending_since = time.monotonic()
    try:
        await outlet.send(records, live=live, position=position)
    finally:
        tailer.sending_since = None


async def wait_for_change(changed: "Changed | None", pause: float, deadline: float | None) -> None:
    """Until the file changes (``changed``: it is watched) or, unwatched, a poll's pause ends;
    a multiline record's deadline (or another) cuts either short."""
    if changed is not None and deadline is None:
        await changed.wait()  # the usual live wait: no timer to arm and cancel
        return
    wait = None if changed is not None else pause
    if deadline is not None:
        left = max(0.0, deadline - time.monotonic())
        wait = left if wait is None else min(wait, left)
    if changed is None:
        await asyncio.sleep(wait or 0.0)
        return
    try:
        async with asyncio.timeout(wait):
            await changed.wait()
    except TimeoutError:
        pass
