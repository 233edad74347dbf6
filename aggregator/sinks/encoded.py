"""What the stdout and file sinks share: a batch filtered by the sink's filter, then encoded."""

import re
from collections.abc import Mapping, Sequence

from aggregator.config import FilterSpec
from aggregator.parse.needs import Needs
from aggregator.record.filters import RecordFilter, record_filter
from aggregator.record.formats import FormatName, make_encoder
from aggregator.record.record import Record
from aggregator.record.where import where_of


def needs_of(format_name: FormatName, spec: FilterSpec | None, colour: bool = False) -> Needs:
    """What a sink writing ``format_name`` through filter ``spec`` needs a codec to find: raw
    and text show only lines and times; json shows the level and fields only in each record's
    JSON; a level filter reads levels, and so does text in colour (levels have colours); a
    ``where`` that names a level or a field reads what the codecs find."""
    if (spec is not None and (spec.level is not None or where_reads_parsed(spec))) or (
        colour and format_name == "text"
    ):
        return "everything"
    return "json" if format_name == "json" else "stamps"


def where_reads_parsed(spec: FilterSpec | None) -> bool:
    """Whether ``spec``'s ``where`` reads levels or fields (the codecs must find them)."""
    return spec is not None and spec.where is not None and where_of(spec.where).reads_parsed


def build_filter(spec: FilterSpec | None) -> RecordFilter | None:
    """The filter a sink's ``filter`` table describes; None when it has none."""
    if spec is None:
        return None
    grep = re.compile(spec.grep) if spec.grep else None
    return record_filter(
        spec.sources, spec.level, grep, where_of(spec.where) if spec.where else None
    )


class FilteredEncoder:
    """Filters a batch and encodes what passes: (bytes, record count), or None if nothing did."""

    def __init__(
        self,
        spec: FilterSpec | None,
        format_name: FormatName,
        source_names: Sequence[str],
        colour: bool = False,
        *,
        origin_bases: Mapping[str, str] | None = None,
        expand_lines: bool = False,
    ) -> None:
        """The keywords: see ``aggregator.record.formats.text_encoder``."""
        self._filter = build_filter(spec)
        self._encode = make_encoder(
            format_name, source_names, colour, origin_bases=origin_bases, expand_lines=expand_lines
        )

    def __call__(self, batch: Sequence[Record]) -> tuple[bytes, int] | None:
        if self._filter is not None:
            batch = self._filter.apply(batch)
        if not batch:
            return None
        return self._encode(batch), len(batch)
