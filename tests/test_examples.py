"""The shipped examples stay valid: each config passes ``aggregator check``."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
ENV = {"AGGREGATOR_TOKEN": "t", "POD_NAME": "web-0", "LOG_DIR": "/logs",
       "AGGREGATOR_STATE_DIR": "/tmp/state", "NATS_URL": "nats://nats:4222",
       "NODE_NAME": "node-7", "OTLP_ENDPOINT": "http://collector:4318",
       "OTLP_TOKEN": "s3cret"}  # fmt: skip


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "check", "-c", str(path)],
        capture_output=True, text=True, env=ENV, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["sidecar.toml", "central.toml", "sharded/central-east.toml", "sharded/central-west.toml",
     "sharded/sidecar-east.toml"],
)  # fmt: skip
def test_example_configs_pass_check(name: str) -> None:
    """examples/sidecar.toml, central.toml and the sharded centrals are valid configs."""
    result = check(EXAMPLES / name)
    assert result.returncode == 0, result.stderr


def test_pod_manifest_config_passes_check(tmp_path: Path) -> None:
    """The config inside the Kubernetes manifest's ConfigMap is valid, its node the pod's."""
    manifest = (EXAMPLES / "kubernetes" / "pod.yaml").read_text()
    assert "restartPolicy: Always" in manifest and "/healthz" in manifest
    block = manifest.split("sidecar.toml: |\n", 1)[1].split("\n---", 1)[0]
    config = tmp_path / "sidecar.toml"
    config.write_text(textwrap.dedent(block))
    result = check(config)
    assert result.returncode == 0, result.stderr
    assert 'node="web-0"' in result.stdout


def test_daemonset_manifest_config_passes_check(tmp_path: Path) -> None:
    """The DaemonSet's config (its ConfigMap) is valid: CRI files of the node to an otlp sink
    whose token is never shown; the manifest mounts the logs read-only and runs non-root."""
    manifest = (EXAMPLES / "kubernetes" / "daemonset.yaml").read_text()
    assert "kind: DaemonSet" in manifest and "runAsNonRoot: true" in manifest
    assert "{ name: containers, mountPath: /var/log/containers, readOnly: true }" in manifest
    block = manifest.split("node.toml: |\n", 1)[1].split("\n---", 1)[0]
    config = tmp_path / "node.toml"
    config.write_text(textwrap.dedent(block))
    result = check(config)
    assert result.returncode == 0, result.stderr
    assert 'codec="cri"' in result.stdout and "otlp" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
