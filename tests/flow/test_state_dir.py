"""state_dir is never a way to write elsewhere (SPEC §9): no symbolic link inside it is
followed, for the write probe, the temporary file or the checkpoint itself; it is made 0700 and
its files 0600."""

import stat
from pathlib import Path

from tests.conftest import Cli, wait_until
from tests.flow.test_checkpoint import run, saved_offset


async def test_state_dir_is_private(tmp_path: Path, cli_processes: list[Cli]) -> None:
    """A state_dir made by the program is 0700, and the checkpoint in it 0600."""
    log = tmp_path / "app.log"
    log.write_text("one\n")
    cli = await run(tmp_path, cli_processes, start_at="beginning")
    await cli.wait_for_out("one")
    await wait_until(lambda: saved_offset(tmp_path) == 4, "a checkpoint")
    assert await cli.stop() == 0
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "checkpoints.json").stat().st_mode) == 0o600


async def test_planted_symlinks_are_never_followed(
    tmp_path: Path, cli_processes: list[Cli]
) -> None:
    """Links named like the write probe, the checkpoint's temporary file and the checkpoint:
    their targets stay as they were; the checkpoint behind a link is not read (reported), and
    is written as a file of its own in state_dir."""
    state = tmp_path / "state"
    state.mkdir()
    targets = {}
    for name in (".write-test", ".checkpoints.json.tmp", "checkpoints.json"):
        target = tmp_path / f"precious-{name.strip('.')}"
        target.write_text(f"precious {name}\n")
        (state / name).symlink_to(target)
        targets[name] = target
    log = tmp_path / "app.log"
    log.write_text("one\n")
    cli = await run(tmp_path, cli_processes, start_at="beginning")
    await cli.wait_for_out("one")
    await wait_until(lambda: saved_offset(tmp_path) == 4, "a checkpoint")
    assert await cli.stop() == 0
    for name, target in targets.items():
        assert target.read_text() == f"precious {name}\n", name
    checkpoint = state / "checkpoints.json"
    assert not checkpoint.is_symlink() and b'"offset"' in checkpoint.read_bytes()
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600
    assert any("cannot read the checkpoints" in line for line in cli.err)
    assert not (state / ".write-test").exists()
