"""What a source puts into its channel: what it is about to read, then chunks of records."""

from collections.abc import Callable
from dataclasses import dataclass, field

from aggregator.record.record import Batch


@dataclass(slots=True)
class Announce:
    """The origins a source is about to read (files found at start, say).

    A source's first item is always an Announce, so that the merge knows every lane that holds
    existing data before it releases anything: that is what makes the catch-up merge exact.
    ``live`` says the origins hold no existing data (opened at their end, a socket).
    """

    origins: list[str] = field(default_factory=list)
    live: bool = True
    resumed: list[str] = field(default_factory=list)
    """Origins resuming from a checkpoint: what they hold is existing data, whatever ``live``."""
    open: bool = False
    """Lanes not announced may come at any time (remote peers): until one has, the merge holds
    live records back for the window, since such a lane could still send an older one."""


@dataclass(slots=True, init=False)
class Chunk:
    """Records from one origin, in the order read.

    ``live``: the origin has read through what existed when reading started; these records
    and all later ones are live (the order window applies). ``final``: the origin ends after
    these records (file read with ``--no-follow``, connection closed, stdin at EOF).
    ``on_release`` is called with a count as the merge sends (or drops) the lane's records:
    the reader's ``Budget.give``. ``position`` (a file's ``checkpoint.Position`` after these
    records) comes back from the merge once all of them have left it, to be committed once the
    sinks have written them. ``watermark`` (a remote lane's): its sender has sent everything
    up to this event time; nothing it sends later ranks before it, so the merge need not wait
    for the lane below it. A chunk with no records and a watermark only moves the lane's bound.
    """

    origin: str
    records: Batch
    live: bool = True
    final: bool = False
    on_release: Callable[[int], None] | None = None
    position: object | None = None
    watermark: int | None = None

    def __init__(
        self,
        origin: str,
        records: Batch,
        live: bool = True,
        final: bool = False,
        on_release: Callable[[int], None] | None = None,
        position: object | None = None,
        watermark: int | None = None,
    ) -> None:
        """The dataclass's own ``__init__`` is generated Python, which compiled callers reach
        through a tuple and a dict of arguments: written out, mypyc compiles it (a live line
        makes a chunk)."""
        self.origin = origin
        self.records = records
        self.live = live
        self.final = final
        self.on_release = on_release
        self.position = position
        self.watermark = watermark


SourceItem = Announce | Chunk
