"""Kubernetes log paths: what the kubelet's file names say of pod, namespace and container."""

import pytest

from aggregator.parse.kubernetes import path_fields

ID = "0123456789abcdef" * 4
UID = "7d1c3c64-2b6f-4f0e-9b2e-1234567890ab"


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        (
            f"/var/log/containers/shop-7d9f_prod_web-{ID}.log",
            {
                "k8s.namespace.name": "prod",
                "k8s.pod.name": "shop-7d9f",
                "k8s.container.name": "web",
                "container.id": ID,
            },
        ),
        (  # wherever the directory is mounted; a container name with dashes
            f"/host/logs/containers/a_b_istio-proxy-{ID}.log",
            {
                "k8s.namespace.name": "b",
                "k8s.pod.name": "a",
                "k8s.container.name": "istio-proxy",
                "container.id": ID,
            },
        ),
        (
            f"/var/log/pods/prod_shop-7d9f_{UID}/web/0.log",
            {
                "k8s.namespace.name": "prod",
                "k8s.pod.name": "shop-7d9f",
                "k8s.pod.uid": UID,
                "k8s.container.name": "web",
            },
        ),
        (
            f"/var/log/pods/prod_shop_{UID}/web/3.log.20261205-101500",  # rotated by the kubelet
            {
                "k8s.namespace.name": "prod",
                "k8s.pod.name": "shop",
                "k8s.pod.uid": UID,
                "k8s.container.name": "web",
            },
        ),
        (f"/var/log/containers/shop_prod_web-{ID[:12]}.log", {}),  # not a full id
        (f"/var/log/other/shop_prod_web-{ID}.log", {}),  # not under containers/
        (f"/var/log/pods/prod_shop_{UID}/web/app.log", {}),
        ("/var/log/syslog", {}),
        ("app.log", {}),
        ("", {}),
    ],
)
def test_path_fields(path: str, fields: dict[str, str]) -> None:
    """The fields come from the path's last parts only, and only from the kubelet's names."""
    assert path_fields(path) == fields
