"""The stdout sink: the merged stream on standard output, flushed per batch.

When the reader is slow (``| less``) the writes wait, and so does the pipeline: nothing is
dropped. When the reader has gone (``| head``) the sink ends quietly.
"""

import asyncio
import logging

from aggregator.config import StdoutSinkConfig
from aggregator.flow.channel import Channel
from aggregator.record.record import Batch
from aggregator.sinks import SinkContext
from aggregator.sinks.delivery import DeliveringSink
from aggregator.sinks.encoded import FilteredEncoder
from aggregator.sinks.writers import ByteWriter, colour_wanted, open_writer

log = logging.getLogger(__name__)


class StdoutSink(DeliveringSink):
    """Writes the stream to fd 1 in the sink's format; colours only on a terminal."""

    gone_errors = (BrokenPipeError, ConnectionResetError)
    writes_now = True

    def __init__(
        self, name: str, config: StdoutSinkConfig, context: SinkContext, fd: int = 1
    ) -> None:
        self.name = name
        self.config = config
        self.fd = fd
        colour = config.color == "always" or (config.color == "auto" and colour_wanted(fd))
        self.encode = FilteredEncoder(
            config.filter,
            config.format,
            context.source_names,
            colour,
            origin_bases=context.origin_bases,
            expand_lines=True,
            judged=context.judged,
        )
        self.needs = self.encode.needs
        self._writer: ByteWriter | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self, inp: Channel[Batch]) -> None:
        self._writer = writer = await open_writer(self.fd)
        # A batch written at once (``DeliveringSink._deliver_now``: a live line's) asks the
        # writer itself, not through the methods below: two interpreted calls less a batch.
        self.can_write_now = writer.can_write_now  # type: ignore[method-assign]
        self.write_now = writer.write_now  # type: ignore[method-assign]
        self._watch = asyncio.create_task(
            self._end_when_gone(self._writer, inp), name="stdout:reader"
        )

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        await self._writer.write(data)

    def can_write_now(self) -> bool:
        return self._writer is not None and self._writer.can_write_now()

    def write_now(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write_now(data)

    async def finish(self) -> None:
        if self._watch is not None:
            self._watch.cancel("the sink has ended")
            await asyncio.gather(self._watch, return_exceptions=True)
        if self._writer is not None:
            await self._writer.close()

    async def _end_when_gone(self, writer: ByteWriter, inp: Channel[Batch]) -> None:
        """Whether or not records come, end the sink as soon as its reader has gone."""
        await writer.gone.wait()
        self.reader_gone(inp)

    def reader_gone(self, inp: Channel[Batch]) -> None:
        if not self.gone:
            log.debug("stdout was closed by its reader")
        super().reader_gone(inp)
