"""One inotify instance shared by the file sources (issue #27), on real files and through
the CLI."""

import asyncio
import os
import signal
from pathlib import Path

from aggregator.sources.file.watch import Watcher
from tests.conftest import Cli, start_cli, wait_until


def inotify_instances() -> int:
    """The inotify instances this process has open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue
    return count


async def test_sources_share_one_instance_and_hear_only_their_paths(tmp_path: Path) -> None:
    """Eight watchers on one directory use one inotify instance; a write to a file sets the
    event of the watcher following it, not the others'."""
    before = inotify_instances()
    paths = [tmp_path / f"{n}.log" for n in range(8)]
    for path in paths:
        path.write_text("")
    watchers = [Watcher() for _ in paths]
    events = [watcher.watch(path) for watcher, path in zip(watchers, paths, strict=True)]
    assert all(watcher.is_watched(path) for watcher, path in zip(watchers, paths, strict=True))
    assert inotify_instances() == before + 1
    with paths[3].open("a") as file:
        file.write("a line\n")
    await wait_until(events[3].is_set, "the writer's file reported")
    await asyncio.sleep(0)  # anything else read with it is dispatched by now
    assert [event.is_set() for event in events] == [n == 3 for n in range(8)]
    for watcher in watchers:
        watcher.close()
    assert inotify_instances() == before


async def test_events_beyond_one_read_are_all_dispatched(tmp_path: Path) -> None:
    """More events queued than one read of the descriptor holds (long names, then a write to
    each followed file): every followed path's event is set, unicode names included."""
    watcher = Watcher()
    stem = "x" * 200
    noise = [tmp_path / f"{stem}-{n}" for n in range(150)]  # ~34 KB of events: 3 reads' worth
    paths = [tmp_path / f"é-{n}.log" for n in range(5)]
    for path in paths:
        path.write_text("")
    events = [watcher.watch(path) for path in paths]
    for path in noise:
        path.write_text("")
    for path in paths:
        with path.open("a") as file:
            file.write("a line\n")
    await wait_until(lambda: all(event.is_set() for event in events), "every path reported")
    assert watcher.rescan.is_set()
    watcher.close()


async def test_a_closed_watcher_hears_nothing_and_lets_go(tmp_path: Path) -> None:
    """A source removed (its watcher closed) is woken no more, while another source on the
    same file still is; the instance closes with the last watcher."""
    before = inotify_instances()
    path = tmp_path / "app.log"
    path.write_text("")
    staying, leaving = Watcher(), Watcher()
    kept, dropped = staying.watch(path), leaving.watch(path)
    leaving.close()
    assert not leaving.is_watched(path)
    path.write_text("a line\n")
    await wait_until(kept.is_set, "the staying source woken")
    (tmp_path / "new.log").write_text("")
    await wait_until(staying.rescan.is_set, "the staying source's rescan woken")
    assert not dropped.is_set() and not leaving.rescan.is_set()
    staying.close()
    assert inotify_instances() == before


async def test_a_symlink_is_watched_in_its_target_directory(tmp_path: Path) -> None:
    """A followed symlink wakes on writes to its target, in another directory."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "app.log"
    target.write_text("")
    link = tmp_path / "app.log"
    link.symlink_to(target)
    watcher = Watcher()
    changed = watcher.watch(link)
    with target.open("a") as file:
        file.write("a line\n")
    await wait_until(changed.is_set, "the link's event set")
    watcher.close()


async def test_a_deleted_directory_is_polled_and_rescanned(tmp_path: Path) -> None:
    """When a watched directory goes, its files are polled (not watched) and the sources
    watching it rescan; watched again once it is back."""
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "app.log"
    path.write_text("")
    watcher = Watcher()
    changed = watcher.watch(path)
    path.unlink()
    directory.rmdir()
    await wait_until(lambda: not watcher.is_watched(path), "the directory no longer watched")
    assert changed.is_set() and watcher.rescan.is_set()
    assert watcher._inotify is not None and watcher._inotify._prefixes == {}
    directory.mkdir()
    added = watcher.added
    assert watcher.watch_directory(directory) and watcher.added == added + 1
    watcher.close()


def watches_of(pid: int) -> list[int]:
    """The number of watches of each inotify instance process ``pid`` has open."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        found.append(sum(line.startswith("inotify wd:") for line in info.splitlines()))
    return found


def two_sources(tmp_path: Path, names: list[str]) -> str:
    return (
        '[aggregator]\norder_window = "0s"\n'
        + "".join(
            f'[sources.{name}]\ntype = "file"\npaths = ["{tmp_path / name}/*.log"]\ncodec = "raw"\n'
            for name in names
        )
        + '[sinks.out]\ntype = "stdout"\nformat = "raw"\n'
    )


async def test_a_source_removed_by_a_reload_lets_go_of_its_watches(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """run -c with two file sources in two directories: one inotify instance, a watch each;
    a reload that removes one leaves one watch, and that source's new files are not read."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    config = tmp_path / "c.toml"
    config.write_text(two_sources(tmp_path, ["a", "b"]))
    cli = await start_cli("run", "-c", str(config), cwd=tmp_path)
    cli_processes.append(cli)
    pid = cli.proc.pid
    await wait_until(lambda: watches_of(pid) == [2], "one instance, a watch for each directory")
    config.write_text(two_sources(tmp_path, ["a"]))
    cli.proc.send_signal(signal.SIGHUP)
    await wait_until(lambda: watches_of(pid) == [1], "b's watch let go")
    (tmp_path / "b" / "late.log").write_text("not read\n")
    (tmp_path / "a" / "late.log").write_text("read\n")
    await cli.wait_for(lambda: "read" in cli.out, "a's new file read")
    assert "not read" not in cli.out
