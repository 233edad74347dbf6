"""What `text` shows beyond TS SOURCE | LINE: the file of a many-file source, multiline records
as several lines, late records, level colours (SPEC §2, §4)."""

import pytest

from aggregator.record.formats import origin_label, text_encoder
from aggregator.record.record import Record

TS = 1_764_064_800_123_000  # 2025-11-25T10:00:00.123Z
PREFIX = "2025-11-25T10:00:00.123Z "


def record(line: str = "x", *, source: str = "app", origin: str = "/var/log/app/a.log",
           level: str | None = None, late: bool = False) -> Record:  # fmt: skip
    item = Record(TS, source, origin, line, level=level)
    item.late = late
    return item


@pytest.mark.parametrize(
    ("source", "origin", "base", "label"),
    [
        ("app", "/var/log/app/a.log", None, "app"),  # one file: the name says it
        ("app", "/var/log/app/a.log", "/var/log/app", "app[a.log]"),
        ("logs", "/srv/logs/web/1/x.log", "/srv/logs", "logs[web/1/x.log]"),
        ("app", "/elsewhere/b.log", "/var/log/app", "app[/elsewhere/b.log]"),  # not below base
        ("app", "", "/var/log", "app"),  # no origin known
        ("logs/*.log", "logs/a.log", "", "logs/a.log"),  # named after its glob: the path
    ],
)
def test_a_many_file_source_names_the_file(
    source: str, origin: str, base: str | None, label: str
) -> None:
    """SOURCE[FILE], FILE relative to the directory the source's paths share."""
    assert origin_label(source, origin, base) == label


@pytest.mark.parametrize(
    ("item", "expand", "shown"),
    [
        (record("one"), True, "app[a.log] | one\n"),
        (
            record("boom\nTraceback:\n  File x\x1b[2J"),
            True,
            "app[a.log] | boom\n"
            + " " * 38 + "Traceback:\n"
            + " " * 38 + "  File x\\x1b[2J\n",
        ),
        (record("a\nb"), False, "app[a.log] | a\\x0ab\n"),  # one record a line (WebSocket)
        (record("a\r\nb"), True, "app[a.log] | a\\x0d\n" + " " * 38 + "b\n"),
        (record("old", late=True), True, "app[a.log] (late) | old\n"),
        (
            record("old\nmore", late=True),
            True,
            "app[a.log] (late) | old\n" + " " * 45 + "more\n",
        ),
    ],
)  # fmt: skip
def test_multiline_and_late_records(item: Record, expand: bool, shown: str) -> None:
    """Continuations indented under the first line; other controls still escaped; (late)."""
    encode = text_encoder(origin_bases={"app": "/var/log/app"}, expand_lines=expand)
    assert encode([item]).decode() == PREFIX + shown


@pytest.mark.parametrize(
    ("level", "line"),
    [
        ("error", "\x1b[31mx\x1b[0m"),
        ("fatal", "\x1b[1;31mx\x1b[0m"),
        ("warn", "\x1b[33mx\x1b[0m"),
        ("info", "x"),
        (None, "x"),
    ],
)
def test_levels_have_colours_on_a_terminal(level: str | None, line: str) -> None:
    """Errors red, warnings yellow, as stern and lnav show them; the rest plain."""
    out = text_encoder(["app"], colour=True)([record(level=level)]).decode()
    assert out == f"{PREFIX}\x1b[36mapp\x1b[0m | {line}\n"


def test_without_colour_levels_are_plain() -> None:
    """No colour: no escape at all, whatever the level."""
    assert text_encoder()([record(level="error")]).decode() == f"{PREFIX}app | x\n"


def test_late_is_marked_in_colour_too() -> None:
    """With colour, (late) is in reverse video after the label."""
    out = text_encoder(["app"], colour=True)([record(late=True)]).decode()
    assert out == f"{PREFIX}\x1b[36mapp\x1b[0m \x1b[7m(late)\x1b[0m | x\n"


def test_each_file_of_a_many_file_source_has_its_colour() -> None:
    """In colour, the files of a glob source are told apart by colour too."""
    encode = text_encoder(["app", "db"], colour=True, origin_bases={"app": "/var/log/app"})
    a = encode([record(origin="/var/log/app/a.log")]).decode()
    b = encode([record(origin="/var/log/app/b.log")]).decode()
    db = encode([record(source="db", origin="db.log")]).decode()
    assert "\x1b[35mapp[a.log]\x1b[0m" in a and "\x1b[32mapp[b.log]\x1b[0m" in b
    assert "\x1b[33mdb\x1b[0m" in db  # a one-file source keeps its config-order colour
