"""``where`` on the command line and in a config, and the command line as a newcomer types it
(issue #29), run as subprocesses."""

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from aggregator.record.record import Record
from aggregator.record.where import where_of
from tests.conftest import DEADLINE

AGGREGATOR = [sys.executable, "-m", "aggregator"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGGREGATOR, *args], cwd=cwd, capture_output=True, text=True, timeout=DEADLINE,
        env={**os.environ, "AGGREGATOR_TOKEN": ""},
    )  # fmt: skip


LOGFMT = (
    'time=2020-01-01T10:00:01Z level=info status=200 path=/health msg="ok"\n'
    'time=2020-01-01T10:00:02Z level=warn status=503 path=/health msg="down"\n'
    'time=2020-01-01T10:00:03Z level=error status=500 path=/api msg="boom"\n'
    'time=2020-01-01T10:00:04Z level=warn status=404 path=/api msg="gone"\n'
)


@pytest.mark.parametrize("output", ["raw", "text", "json"])
def test_tail_where_reads_fields_whatever_the_output_shows(tmp_path: Path, output: str) -> None:
    """--where on fields passes the right lines in every format: the codecs are asked for the
    fields even when the output shows only lines (raw, text)."""
    (tmp_path / "app.log").write_text(LOGFMT)
    where = 'level>=warn and status>=500 and not path~"^/health"'
    result = run("tail", "--no-follow", "--format", output, "--where", where, "app.log",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "boom" in lines[0], lines


def test_tail_where_combines_with_the_other_filters(tmp_path: Path) -> None:
    """--where and --grep both apply (and)."""
    (tmp_path / "app.log").write_text(LOGFMT)
    result = run("tail", "--no-follow", "--format", "raw", "--where", "level>=warn",
                 "--grep", "api", "app.log", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.rsplit("msg=", 1)[1] for line in result.stdout.splitlines()] == [
        '"boom"', '"gone"',
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["tail", "connect"])
def test_a_wrong_where_names_its_position_and_exits_2(tmp_path: Path, command: str) -> None:
    """A wrong --where: exit 2 with the option, the position and what was expected."""
    target = "app.log" if command == "tail" else "ws://127.0.0.1:9/ws"
    result = run(command, target, "--where", "level>=warn and status>=", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        f'aggregator {command}: --where: at 25: expected a value after ">=", got end of input'
        in result.stderr
    ), result.stderr


def test_a_config_with_a_wrong_where_is_refused_with_the_key_and_position(tmp_path: Path) -> None:
    """filter.where in a config is checked at load: the key path, then the position."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[sources.a]\ntype = "stdin"\n'
        '[sinks.out]\ntype = "stdout"\nfilter = { where = "status >= " }\n'
    )
    result = run("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert 'sinks.out.filter.where: at 11: expected a value after ">="' in result.stderr, (
        result.stderr
    )


def test_a_config_where_filters_a_sink(tmp_path: Path) -> None:
    """A sink's filter.where passes only what it says (fields found for it)."""
    (tmp_path / "app.log").write_text(LOGFMT)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[sources.a]\ntype = "file"\npaths = ["{tmp_path / "app.log"}"]\n'
        'start_at = "beginning"\nfollow = false\ncodec = "logfmt"\n'
        '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
        "filter = { where = 'status in (404, 500)' }\n"
    )
    result = run("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line.rsplit("msg=", 1)[1] for line in result.stdout.splitlines()] == [
        '"boom"', '"gone"',
    ]  # fmt: skip


@pytest.mark.parametrize("flag", ["-f", "-F", "--follow"])
def test_tail_accepts_f_and_capital_f(tmp_path: Path, flag: str) -> None:
    """tail -f / -F are accepted (following is the default); with --no-follow, refused."""
    (tmp_path / "a.log").write_text("2020-01-01T10:00:01Z one\n")
    result = run("tail", flag, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    refused = run("tail", flag, "--no-follow", "a.log", cwd=tmp_path)
    assert refused.returncode == 2
    assert "-f/-F: follows, --no-follow does not" in refused.stderr


@pytest.mark.parametrize(
    ("command", "needed"),
    [("tail", []), ("connect", ["ws://127.0.0.1:9/ws"]), ("run", ["-c", "x.toml"]),
     ("check", ["-c", "x.toml"])],
)  # fmt: skip
def test_an_unknown_option_prints_the_subcommand_s_usage(
    tmp_path: Path, command: str, needed: list[str]
) -> None:
    """An unknown option is refused with ``usage: aggregator COMMAND …``, exit 2."""
    result = run(command, *needed, "--bogus", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: aggregator {command} "), result.stderr
    assert "unrecognized arguments: --bogus" in result.stderr


def test_connect_source_points_at_source_filter(tmp_path: Path) -> None:
    """--source means a source definition; connect refuses it and names --source-filter."""
    result = run("connect", "ws://127.0.0.1:9/ws", "--source", "app*", cwd=tmp_path)
    assert result.returncode == 2
    assert "--source-filter GLOB" in result.stderr
    helped = run("connect", "--help", cwd=tmp_path)
    assert "--source-filter GLOB" in helped.stdout and "--source " not in helped.stdout


def mixed_log(count: int) -> str:
    """JSON, logfmt and text lines with levels and fields, in time order."""
    lines = []
    for index in range(count):
        stamp = f"2030-01-01T10:{index // 60 % 60:02d}:{index % 60:02d}.{index % 1000:03d}Z"
        level = ("info", "warn", "error")[index % 3]
        status = 200 + index % 7 * 50
        if index % 3 == 0:
            lines.append(
                f'{{"ts":"{stamp}","level":"{level}","status":{status},"msg":"n={index}"}}'
            )
        elif index % 3 == 1:
            lines.append(f"ts={stamp} level={level} status={status} ctx.user=u{index % 5}")
        else:
            lines.append(f"{stamp} {level.upper()} text line n={index}")
    return "\n".join(lines) + "\n"


def records_of(json_lines: list[str]) -> list[Record]:
    records = []
    for text in json_lines:
        member = orjson.loads(text)
        source, origin, line = member["source"], member["origin"], member["line"]
        records.append(Record(0, source, origin, line, member.get("level"), member.get("fields")))
    return records


def test_judged_wheres_pass_what_testing_the_records_passes(tmp_path: Path) -> None:
    """Sinks whose wheres read levels and fields, over a file large enough for the parse
    workers (which judge the wheres there, ``Record.verdicts``): each sink writes exactly
    the records of the unfiltered stream that pass its where, with their seq."""
    (tmp_path / "app.log").write_text(mixed_log(6000))  # ~380 KB: several worker regions
    first = 'level>=warn and status>=400 and not msg contains "n=1"'
    second = 'ctx.user in (u1, u2) or line ~ "ERROR.*n=[0-9]*7$" or origin ~ "nothing"'
    sinks = "".join(
        f'[sinks.{name}]\ntype = "file"\npath = "{tmp_path / name}"\nformat = "{fmt}"\n{where}'
        for name, fmt, where in [
            ("all", "json", ""),
            ("first", "raw", f"filter = {{ where = '{first}' }}\n"),
            ("second", "json", f"filter = {{ where = '{second}' }}\n"),
        ]
    )
    config = tmp_path / "c.toml"
    config.write_text(
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\nparse_workers = 1\n'
        f'[sources.app]\ntype = "file"\npaths = ["{tmp_path / "app.log"}"]\n'
        f'start_at = "beginning"\nfollow = false\ncodec = "auto"\n{sinks}'
    )
    result = run("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    everything = (tmp_path / "all").read_text().splitlines()
    assert len(everything) == 6000
    records = records_of(everything)
    passing = [where_of(first).test(record) for record in records]
    assert 0 < sum(passing) < 6000
    assert (tmp_path / "first").read_text().splitlines() == [
        record.line for record, passes in zip(records, passing, strict=True) if passes
    ]
    expected = [line for line, record in zip(everything, records, strict=True)
                if where_of(second).test(record)]  # fmt: skip
    assert 0 < len(expected) < 6000
    assert (tmp_path / "second").read_text().splitlines() == expected
