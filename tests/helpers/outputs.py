"""What a run wrote to a JSON output file, read while it may still be writing."""

from pathlib import Path

import orjson


def records_in(path: Path) -> list[dict[str, object]]:
    """The records of a JSON output; a line that is not one (cut by a SIGKILL) is left out."""
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return records


def finished_lines(path: Path) -> list[bytes]:
    """The lines a writer has finished: a last one without its newline is still being written."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines()


def finished_count(path: Path) -> int:
    """How many lines a writer has finished (cheap: nothing is parsed)."""
    return path.read_bytes().count(b"\n") if path.exists() else 0
