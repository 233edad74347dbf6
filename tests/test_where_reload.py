"""A sink's ``where`` judged in the parse workers stays right across a reload (issue #29, SPEC
§3 "where", §8): a reload that changes one sink's ``where`` and adds a sink with a new one,
while lines flow, neither drops nor passes a record the sink's own test would not."""

import asyncio
import datetime
import functools
import signal
from pathlib import Path

import orjson
import pytest

from aggregator.parse.codecs import make_codec, parse_lines
from aggregator.record.record import Record
from aggregator.record.where import where_of
from tests.conftest import Cli, start_cli, wait_while_growing
from tests.helpers.outputs import finished_count, finished_lines

pytestmark = pytest.mark.slow

BEFORE = 'level >= warn and status >= 400 and not user = "u2"'
AFTER = 'status >= 300 and status < 500 or user in ("u1", "u4") and level = "error"'
ADDED = 'user = "u3" or (level = "error" and status = 200)'


def config_text(tmp_path: Path, fmt: str, reloaded: bool) -> str:
    """Two file sources; ``all`` writes every record; ``sel`` has BEFORE, then AFTER; the
    reload adds ``added`` (ADDED). A long order window keeps records in the merge, decoded
    before the reload and written after it."""
    sources = "".join(
        f'[sources.{name}]\ntype = "file"\npaths = ["{tmp_path / name}.log"]\n'
        f'start_at = "beginning"\ncodec = "json"\n'
        for name in ("p", "q")
    )

    def sink(name: str, where: str | None) -> str:
        table = f'[sinks.{name}]\ntype = "file"\npath = "{tmp_path / name}.out"\nformat = "{fmt}"\n'
        return table + (f"filter = {{ where = '{where}' }}\n" if where else "")

    sinks = sink("all", None) + sink("sel", AFTER if reloaded else BEFORE)
    if reloaded:
        sinks += sink("added", ADDED)
    return (
        f'[aggregator]\nstate_dir = "{tmp_path / "state"}"\norder_window = "1s"\n'
        f'idle_timeout = "300ms"\nparse_workers = 1\n{sources}{sinks}'
    )


class Writer:
    """Appends JSON lines to a file every 20 ms: mostly a few, every sixth time ~40 KB at
    once (a read the parse worker takes)."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.count = 0
        self.stopped = False
        self.task = asyncio.create_task(self._run(), name=f"test:write:{name}")

    def _line(self) -> str:
        n = self.count
        self.count += 1
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        level = ("info", "warn", "error", "debug", "info")[n % 5]
        status = (200, 301, 404, 503)[n // 5 % 4]
        return orjson.dumps(
            {
                "ts": now,
                "level": level,
                "status": status,
                "user": f"u{n % 7}",
                "w": self.name,
                "n": n,
            }
        ).decode()

    async def _run(self) -> None:
        tick = 0
        while not self.stopped:
            lines = [self._line() for _ in range(450 if tick % 6 == 0 else 3)]
            with self.path.open("a") as file:
                file.write("\n".join(lines) + "\n")
            tick += 1
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.stopped = True
        await self.task


def passes(text: str, lines: list[str]) -> list[bool]:
    """Whether each line's record, as the json codec reads it, passes ``text``."""
    _, levels, fields, _ = parse_lines(make_codec("json", None, "auto", None), lines)
    where = where_of(text)
    return [
        where.test(Record(0, "x", "x.log", line, level, found))
        for line, level, found in zip(lines, levels, fields, strict=True)
    ]


def read_lines(path: Path, fmt: str) -> list[str]:
    """The lines a sink has finished writing (the record's line, from json output)."""
    lines = finished_lines(path)
    if fmt == "raw":
        return [line.decode() for line in lines]
    return [orjson.loads(member)["line"] for member in lines]


@pytest.mark.parametrize("fmt", ["raw", "json"])
async def test_a_reload_that_changes_and_adds_judged_wheres_drops_nothing(
    tmp_path: Path, cli_processes: list[Cli], fmt: str
) -> None:
    """SIGHUP changes ``sel``'s where and adds ``added`` while two writers append: ``sel``
    writes exactly what passes BEFORE up to one point of the merged stream and AFTER from
    there, and ``added`` exactly what passes ADDED from the same point: every record once,
    none dropped or passed by a verdict on another where (raw output: the records carry only
    their times; json: their JSON tails)."""
    config = tmp_path / "c.toml"
    config.write_text(config_text(tmp_path, fmt, reloaded=False))
    for name in ("p", "q"):
        (tmp_path / f"{name}.log").touch()
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    writers = [Writer(name, tmp_path / f"{name}.log") for name in ("p", "q")]
    all_out = tmp_path / "all.out"
    out_lines = functools.partial(finished_count, all_out)  # counted, not parsed: cheap
    await wait_while_growing(lambda: out_lines() > 3000, out_lines, "lines through before")
    config.write_text(config_text(tmp_path, fmt, reloaded=True))
    assert cli.proc.pid is not None
    cli.proc.send_signal(signal.SIGHUP)
    await cli.wait_for(lambda: any("reloaded:" in text for text in cli.err), "the reload")
    written = sum(writer.count for writer in writers)
    await wait_while_growing(lambda: out_lines() > written + 3000, out_lines, "lines after")
    for writer in writers:
        await writer.stop()
    total = sum(writer.count for writer in writers)
    await wait_while_growing(lambda: out_lines() == total, out_lines, "every line in all")
    assert await cli.stop() == 0
    merged = read_lines(all_out, fmt)
    assert len(set(merged)) == total
    before, after, added = (passes(text, merged) for text in (BEFORE, AFTER, ADDED))
    got_added = read_lines(tmp_path / "added.out", fmt)
    got_sel = read_lines(tmp_path / "sel.out", fmt)
    assert got_added, "the new sink wrote nothing"
    # The point where the outputs changed: after the last ADDED line before added's first.
    first = merged.index(got_added[0])
    last_before = max((i for i in range(first) if added[i]), default=-1)
    points = [
        point
        for point in range(last_before + 1, first + 1)
        if got_sel
        == [line for i, line in enumerate(merged) if (before[i] if i < point else after[i])]
    ]
    assert points, "sel wrote other than BEFORE's records up to a point and AFTER's from it"
    point = points[0]
    assert 0 < point < len(merged) - 3000
    assert got_added == [line for i, line in enumerate(merged) if i >= point and added[i]]
