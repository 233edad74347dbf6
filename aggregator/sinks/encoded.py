"""What the stdout and file sinks share: a batch filtered by the sink's filter, then encoded."""

import re
from collections.abc import Iterable, Mapping, Sequence

from aggregator.config import FilterSpec
from aggregator.parse.needs import Needs
from aggregator.record.filters import RecordFilter, record_filter
from aggregator.record.formats import FormatName, make_encoder
from aggregator.record.record import Record
from aggregator.record.verdicts import Completer, Judged
from aggregator.record.where import where_of


def needs_of(
    format_name: FormatName, spec: FilterSpec | None, colour: bool = False, judged: bool = False
) -> Needs:
    """What a sink writing ``format_name`` through filter ``spec`` needs a codec to find: raw
    and text show only lines and times; json shows the level and fields only in each record's
    JSON; a level filter reads levels, and so does text in colour (levels have colours); a
    ``where`` that names a level or a field reads what the codecs find, unless the decoders
    judge it (``judged``: ``aggregator.record.verdicts``)."""
    reads = spec is not None and (
        spec.level is not None or (where_reads_parsed(spec) and not judged)
    )
    if reads or (colour and format_name == "text"):
        return "everything"
    return "json" if format_name == "json" else "stamps"


def where_reads_parsed(spec: FilterSpec | None) -> bool:
    """Whether ``spec``'s ``where`` reads levels or fields (the codecs must find them)."""
    return spec is not None and spec.where is not None and where_of(spec.where).reads_parsed


JUDGING_SINKS = ("stdout", "file", "tcp")
"""The sinks whose filter reads a ``where``'s verdicts (``FilteredEncoder``'s ``judged``)."""


def judged_wheres(sinks: Iterable[object]) -> list[str]:
    """The ``where``s of ``sinks`` (their config tables) that the decoders judge: those of
    the sinks that read verdicts, that read levels or fields."""
    specs = [getattr(table, "filter", None) for table in sinks]
    types = [getattr(table, "type", "") for table in sinks]
    return [
        spec.where
        for spec, kind in zip(specs, types, strict=True)
        if kind in JUDGING_SINKS and spec is not None and spec.where and where_reads_parsed(spec)
    ]


def build_filter(
    spec: FilterSpec | None, verdict: int = 0, complete: Completer | None = None
) -> RecordFilter | None:
    """The filter a sink's ``filter`` table describes; None when it has none. ``verdict``:
    the bit of its ``where`` in ``Record.verdicts`` if the decoders judge it, and ``complete``
    what finds again what a record not judged on it lacks."""
    if spec is None:
        return None
    grep = re.compile(spec.grep) if spec.grep else None
    where = where_of(spec.where) if spec.where else None
    return record_filter(spec.sources, spec.level, grep, where, verdict, complete)


class FilteredEncoder:
    """Filters a batch and encodes what passes: (bytes, record count), or None if nothing did.

    ``needs``: what its sink needs the codecs to find (``needs_of``)."""

    def __init__(
        self,
        spec: FilterSpec | None,
        format_name: FormatName,
        source_names: Sequence[str],
        colour: bool = False,
        *,
        origin_bases: Mapping[str, str] | None = None,
        expand_lines: bool = False,
        judged: Judged | None = None,
    ) -> None:
        """``judged``: where a ``where`` that reads levels or fields is given to the decoders
        to judge (``SinkContext.judged``); the other keywords: see
        ``aggregator.record.formats.text_encoder``."""
        verdict = 0
        if judged is not None and spec is not None and spec.where and where_reads_parsed(spec):
            verdict = judged.bit(spec.where)
        self.needs = needs_of(format_name, spec, colour, judged=verdict != 0)
        complete = judged.complete if judged is not None and verdict else None
        self._filter = build_filter(spec, verdict, complete)
        self._encode = make_encoder(
            format_name, source_names, colour, origin_bases=origin_bases, expand_lines=expand_lines
        )

    def __call__(self, batch: Sequence[Record]) -> tuple[bytes, int] | None:
        if self._filter is not None:
            batch = self._filter.apply(batch)
        if not batch:
            return None
        return self._encode(batch), len(batch)
