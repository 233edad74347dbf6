"""Which files a source follows: the paths its globs match now, minus its excludes."""

import glob
import os
from collections.abc import Container
from pathlib import Path

from aggregator.record.filters import NamePathMatcher


def discover(
    patterns: list[str], exclude: NamePathMatcher, known: Container[str] = frozenset()
) -> list[Path]:
    """The regular files that match ``patterns`` (``**`` allowed) and no ``exclude`` pattern,
    but those in ``known`` (names as the glob gives them): with thousands of files followed, a
    rescan then costs a glob, not a stat per file."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        pattern = os.path.normpath(os.path.expanduser(pattern))  # as Path will spell it
        for name in sorted(glob.glob(pattern, recursive=True)):
            if name in known:
                continue
            path = Path(name)
            if exclude and exclude.matches(path.name, str(path)):
                continue
            if path.is_file():
                found.setdefault(path)
    return list(found)


def fixed_prefix(pattern: str) -> Path:
    """The directory part of a glob before its first wildcard: what can be watched."""
    parts = []
    for part in Path(os.path.expanduser(pattern)).parts[:-1]:
        if any(char in part for char in "*?["):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def missing_paths(patterns: list[str], found: Container[Path]) -> dict[Path, str]:
    """The patterns that name one path (no wildcard) that does not exist, by that path."""
    missing = {}
    for pattern in patterns:
        if glob.has_magic(pattern):
            continue
        path = Path(os.path.normpath(os.path.expanduser(pattern)))
        if path not in found and not path.is_file():
            missing[path] = pattern
    return missing
