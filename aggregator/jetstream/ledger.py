"""What a nats source has taken, kept in ``state_dir``: per subject the last stream sequence,
per sidecar file (``Record.lane``) the last record. It is saved through the ``Checkpointer``,
like file offsets, and written the same way: a temporary file, fsynced, renamed over the old.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from aggregator.flow.checkpoints import check_state_dir, read_state_file, write_atomically

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LANES_KEPT = 256
"""Files per subject whose high-water mark is kept: older ones (rotated away long ago) go."""


@dataclass(frozen=True, slots=True)
class Taken:
    """What one message changed: its subject's last stream sequence and the high-water marks of
    the subject's files; ``message`` is acknowledged once this is saved."""

    key: str  # the subject
    stream_seq: int
    lanes: Mapping[str, int]
    message: Any = None
    book_name: str = ""

    @property
    def book(self) -> str:
        return self.book_name

    def is_current(self) -> bool:
        return True


class Ledger:
    """This source's book in ``state_dir``: ``nats-DURABLE.json``, saved atomically."""

    def __init__(self, state_dir: Path, durable: str, book: str) -> None:
        self.state_dir = state_dir
        self.path = state_dir / f"nats-{durable}.json"
        self.book = book
        self.stream_created = ""
        """When the stream was made (the server says): a stream made again is another one."""

    def check_writable(self) -> None:
        check_state_dir(self.state_dir)

    def load(self) -> dict[str, Taken]:
        try:
            data = orjson.loads(read_state_file(self.path))
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            self.stream_created = str(data.get("stream_created", ""))
            return {
                subject: Taken(subject, int(entry["seq"]), dict(entry["lanes"]), None, self.book)
                for subject, entry in data["subjects"].items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError, AttributeError, KeyError, TypeError,
                ValueError) as error:  # fmt: skip
            log.error("%s: cannot read (%s); what was taken before may come again", self.path,
                      error)  # fmt: skip
            return {}

    def save(self, positions: dict[str, Taken]) -> None:
        subjects = {
            key: {"seq": taken.stream_seq, "lanes": dict(taken.lanes)}
            for key, taken in positions.items()
        }
        data = orjson.dumps(
            {
                "version": FORMAT_VERSION,
                "stream_created": self.stream_created,
                "subjects": subjects,
            }
        )
        write_atomically(self.path, data)
