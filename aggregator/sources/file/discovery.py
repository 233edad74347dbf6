"""Which files a source follows: the paths its globs match now, minus its excludes, minus
compressed files (rotated copies that logrotate compressed are not text)."""

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


def why_missing(path: Path, pattern: str) -> str:
    """Why a path given (not a glob) is not read: not there, or a directory."""
    if path.is_dir():
        return (f"is a directory, not a file: give a glob of its files, such as "
                f"'{os.path.join(pattern, '*.log')}'")  # fmt: skip
    return "no such file"


def unmatched_globs(
    patterns: list[str], exclude: NamePathMatcher, found: Container[Path]
) -> list[str]:
    """The patterns with wildcards that match no file followed (``found``, when given all)."""
    return [
        pattern
        for pattern in patterns
        if glob.has_magic(pattern) and not any(p in found for p in discover([pattern], exclude))
    ]


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


COMPRESSED_SUFFIXES = {".gz": "gzip", ".xz": "xz", ".zst": "zstd", ".bz2": "bzip2", ".lz4": "lz4"}
"""Names that say a file is compressed (logrotate's ``compressext``s)."""
MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
"""First bytes that say a file is compressed, whatever its name."""


def compression_of(name: str, head: bytes) -> str | None:
    """Which compression a file uses, by its name or its first bytes; None: none known."""
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bzip2"
    return COMPRESSED_SUFFIXES.get(os.path.splitext(name)[1])


def split_compressed(paths: list[Path]) -> tuple[list[Path], dict[Path, str]]:
    """``paths`` without the compressed files, and those by their compression (a file that
    cannot be read is kept: opening it says why)."""
    text: list[Path] = []
    compressed: dict[Path, str] = {}
    for path in paths:
        kind = COMPRESSED_SUFFIXES.get(path.suffix)
        if kind is None:
            try:
                with path.open("rb") as file:
                    kind = compression_of(path.name, file.read(6))
            except OSError:
                kind = None
        if kind is None:
            text.append(path)
        else:
            compressed[path] = kind
    return text, compressed
