"""What the sinks need a parse to find: the less, the cheaper each line is."""

from typing import Literal, get_args

Needs = Literal["stamps", "json", "everything"]
"""Least first (``NEEDS``): only each line's time (``Codec.stamp``), the time and the rest of
the record's JSON (``Record.json_tail``), or all a codec finds. Each sink says what it needs;
the pipeline asks the codecs for the most any sink needs."""
NEEDS: tuple[Needs, ...] = get_args(Needs)
