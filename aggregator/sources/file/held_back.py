"""Files rotated away while their reader is held back (slow sinks): kept track of, read late,
or counted as lost — never silently (SPEC §6).

While a reader waits long to hand its records on, its path is looked at now and then: a file
that appears there after the one being read is noted with its size (``FileTailer.successors``).
After the rotation, each noted file is looked for by its identity in the directory and read
from its start, or, deleted meanwhile, counted with the bytes it held.
"""

import asyncio
import logging
import time
from collections.abc import Container, Mapping
from pathlib import Path
from typing import NoReturn

from aggregator.parse.decode import Decoding
from aggregator.sources.file.identity import files_by_identity, identity_key
from aggregator.sources.file.tailer import FileTailer

log = logging.getLogger(__name__)

HELD_BACK = 0.25
"""Seconds a reader may wait to hand its records on before its path is looked at."""


async def note_replacements(current: Mapping[Path, FileTailer]) -> NoReturn:
    """Every ``HELD_BACK``, note the files that replaced a held-back reader's file at its path
    (``current``: the tailer each followed path is read in)."""
    while True:
        await asyncio.sleep(HELD_BACK)
        now = time.monotonic()
        for path, tailer in list(current.items()):
            since = tailer.sending_since
            if since is None or now - since < HELD_BACK:
                continue
            try:
                stat = path.stat()
            except OSError:
                continue  # between a rename and a create
            key = identity_key(stat)
            if key == tailer.key:
                continue
            if key not in tailer.successors:
                log.info("%s: replaced while its reader is held back (slow sinks); "
                         "keeping track of the new file", path)  # fmt: skip
            tailer.successors[key] = stat.st_size


async def open_successors(
    path: Path, previous: FileTailer, current: str, tailed: Container[str], decoding: Decoding
) -> tuple[list[FileTailer], list[int]]:
    """The files noted at ``path`` after ``previous`` and before the ``current`` one (its
    identity), each open at its start where it is now; and the sizes of those that are gone.
    A file whose new name a glob of the source matches (in ``tailed``) is followed there."""
    missed = {key: size for key, size in previous.successors.items() if key != current}
    if not missed:
        return [], []
    where = await asyncio.to_thread(files_by_identity, path.parent)
    found: list[FileTailer] = []
    lost: list[int] = []
    for key, size in missed.items():
        place = where.get(key)
        if place is not None and str(place) in tailed:
            continue
        tailer = FileTailer(place, decoding.lane(str(path))) if place is not None else None
        if tailer is not None:
            try:
                await tailer.open(at_end=False)
            except OSError:
                tailer = None
            else:
                if tailer.key != key:  # replaced between the look and the open
                    await tailer.close()
                    tailer = None
        if tailer is None:
            lost.append(size)
        else:
            found.append(tailer)
    return found, lost
