"""One inotify instance shared by the file sources (issue #27), on real files."""

import asyncio
import os
from pathlib import Path

from aggregator.sources.file.watch import Watcher
from tests.conftest import wait_until


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
    directory.mkdir()
    added = watcher.added
    assert watcher.watch_directory(directory) and watcher.added == added + 1
    watcher.close()
