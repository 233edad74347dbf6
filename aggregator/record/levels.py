"""The six levels a record may have, least to most severe: a filter's ``level`` is a minimum on
this scale. Codecs map other programs' spellings onto them (``aggregator.parse.codecs``)."""

from typing import Literal, get_args

Level = Literal["trace", "debug", "info", "warn", "error", "fatal"]
LEVELS: tuple[Level, ...] = get_args(Level)
LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(LEVELS)}
