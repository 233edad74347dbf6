"""Pure: what a Kubernetes log file's path says of the container that wrote it.

The kubelet names each container's log twice, and both names say who wrote it (no API
server asked), matched on the path's last parts wherever the directory is mounted:

- ``.../containers/POD_NAMESPACE_CONTAINER-ID.log`` (a symlink): pod, namespace, container,
  and the container's 64-hex id;
- ``.../pods/NAMESPACE_POD_UID/CONTAINER/N.log`` (and its rotated ``N.log.TIMESTAMP``):
  namespace, pod, the pod's uid, container.

The fields carry OpenTelemetry's attribute names, so the otlp sink sends them as they are.
"""

import re

NAMESPACE = "k8s.namespace.name"
POD = "k8s.pod.name"
CONTAINER = "k8s.container.name"
POD_UID = "k8s.pod.uid"
CONTAINER_ID = "container.id"

# Pod, namespace and container names are DNS names: no "_" in them, which is what makes
# the kubelet's "_"-joined names readable. Compiled on first use (by ``re``), not at import:
# most paths are not a kubelet's.
_CONTAINERS_NAME = r"([^_/]+)_([^_/]+)_([^_/]+)-([0-9a-f]{64})\.log"
_POD_DIRECTORY = r"([^_/]+)_([^_/]+)_([0-9a-fA-F-]{8,})"
_POD_LOG = r"\d+\.log(\.\d{8}-\d{6})?(\.gz)?"


def path_fields(path: str) -> dict[str, str]:
    """The ``k8s.*`` (and ``container.id``) fields ``path`` gives; {} for any other path."""
    parts = path.rsplit("/", 4)
    if len(parts) >= 2 and parts[-2] == "containers":
        match = re.fullmatch(_CONTAINERS_NAME, parts[-1])
        if match is not None:
            pod, namespace, container, container_id = match.groups()
            return {
                NAMESPACE: namespace,
                POD: pod,
                CONTAINER: container,
                CONTAINER_ID: container_id,
            }
    if len(parts) >= 4 and parts[-4] == "pods" and re.fullmatch(_POD_LOG, parts[-1]):
        match = re.fullmatch(_POD_DIRECTORY, parts[-3])
        if match is not None:
            namespace, pod, uid = match.groups()
            return {NAMESPACE: namespace, POD: pod, POD_UID: uid, CONTAINER: parts[-2]}
    return {}
