"""The stdout sink: the merged stream on standard output, flushed per batch.

When the reader is slow (``| less``) the writes wait, and so does the pipeline: nothing is
dropped. When the reader has gone (``| head``) the sink ends quietly.
"""

import asyncio
import logging

from aggregator.config import StdoutSinkConfig
from aggregator.flow.channel import Channel, EndOfStream
from aggregator.record.record import Batch
from aggregator.sinks import Sink, SinkContext
from aggregator.sinks.encoded import FilteredEncoder, needs_of
from aggregator.sinks.writers import ByteWriter, colour_wanted, open_writer

log = logging.getLogger(__name__)


class StdoutSink(Sink):
    """Writes the stream to fd 1 in the sink's format; colours only on a terminal."""

    def __init__(
        self, name: str, config: StdoutSinkConfig, context: SinkContext, fd: int = 1
    ) -> None:
        self.name = name
        self.config = config
        self.fd = fd
        self.records_out = 0
        self.delivered_seq = 0  # the last seq written (checkpoints wait for it)
        self.gone = False  # the reader closed stdout: nothing more is delivered here
        colour = config.color == "always" or (config.color == "auto" and colour_wanted(fd))
        self.needs = needs_of(config.format, config.filter, colour)
        self._encode = FilteredEncoder(
            config.filter,
            config.format,
            context.source_names,
            colour,
            origin_bases=context.origin_bases,
            expand_lines=True,
        )

    async def run(self, inp: Channel[Batch]) -> None:
        writer = await open_writer(self.fd)
        watch = asyncio.create_task(self._end_when_gone(writer, inp), name="stdout:reader")
        try:
            while True:
                try:
                    batch = await inp.get()
                except EndOfStream:
                    return
                encoded = self._encode(batch)
                if encoded is not None:
                    await writer.write(encoded[0])
                    self.records_out += encoded[1]
                self.delivered_seq = batch[-1].seq
        except (BrokenPipeError, ConnectionResetError):
            self._reader_gone(inp)
        finally:
            watch.cancel("the sink has ended")
            await asyncio.gather(watch, return_exceptions=True)
            await writer.close()

    async def _end_when_gone(self, writer: ByteWriter, inp: Channel[Batch]) -> None:
        """Whether or not records come, end the sink as soon as its reader has gone."""
        await writer.gone.wait()
        self._reader_gone(inp)

    def _reader_gone(self, inp: Channel[Batch]) -> None:
        if not self.gone:
            log.debug("stdout was closed by its reader")
        self.gone = True
        inp.close()
