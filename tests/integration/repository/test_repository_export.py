"""export_backup: kubectl-ready YAML, links out of the target refused, safe file names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.core.canonical import canonical_blob
from chalicelib.core.gitops import for_gitops
from chalicelib.core.resources import Resource
from chalicelib.repository import Repository, RepositoryReader, export_backup
from chalicelib.repository.errors import ExportError
from chalicelib.repository.export import safe_name
from chalicelib.repository.export_layout import MAX_SEGMENT, segment
from tests.support.builders import write_backup
from tests.support.repository import small_cluster


def test_export_writes_kubectl_ready_yaml(tmp_path: Path, repo: Repository, written: Any) -> None:
    manifest, stored = written
    out = tmp_path / "export"

    report = export_backup(RepositoryReader(repo), manifest, out)

    assert report.objects == len(small_cluster()) == len(report.files)
    assert "shop/configmap/settings-0.yaml" in report.files
    assert "billing/deployment/web.yaml" in report.files
    assert "_0-definitions/namespace/shop.yaml" in report.files
    # a name that had to change keeps a readable prefix and gains its hash, so "a:b" and "a_b" never meet
    assert any(f.startswith("_cluster/clusterrole/system_controller_widgets-") for f in report.files)
    by_content = {canonical_blob(obj)[1]: obj for obj in stored.values()}
    for rel in report.files:
        text = (out / rel).read_text()
        doc = yaml.safe_load(text)
        assert list(doc)[:3] == ["apiVersion", "kind", "metadata"]
        assert canonical_blob(doc)[1] in by_content
        assert (out / rel).stat().st_mode & 0o077 == 0
    secret = yaml.safe_load((out / "shop/secret/db-creds.yaml").read_text())
    assert secret["data"] == {"password": "c2VjcmV0LXBhc3N3b3Jk"} and "status" not in secret

    with pytest.raises(ExportError, match="overwrite"):
        export_backup(RepositoryReader(repo), manifest, out)


def test_export_refuses_to_follow_a_link_out_of_the_target(tmp_path: Path, repo: Repository, written: Any) -> None:
    manifest, _ = written
    out, elsewhere = tmp_path / "export", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "shop").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(ExportError, match="outside"):
        export_backup(RepositoryReader(repo), manifest, out)

    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "expected"), [("..", "_.."), (".", "_."), ("a/b", "a_b"), ("sys:ctl", "sys_ctl"), ("ok-1.x", "ok-1.x")]
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def _backup(repo: Repository, objects: list[tuple[str, str, str, dict[str, Any]]]) -> Any:
    """Write one backup of (group, version, plural, object); namespaced when the object names a namespace."""
    items = [
        (Resource(group, version, obj["kind"], plural, "namespace" in obj["metadata"]), obj)
        for group, version, plural, obj in objects
    ]
    written = write_backup(repo, items, cluster="c", backup_id="20260101T000000Z-bbbbbb")
    assert written.manifest is not None
    return written.manifest


def _cm(name: str, ns: str = "shop", **data: str) -> tuple[str, str, str, dict[str, Any]]:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}
    return ("", "v1", "configmaps", obj)


def test_every_valid_name_exports_to_a_distinct_short_file(tmp_path: Path, repo: Repository) -> None:
    long_a, long_b = "a" * 253, "a" * 252 + "b"
    dotted = ("x." * 126) + "y"  # 253 characters, a valid DNS subdomain
    manifest = _backup(repo, [_cm(long_a), _cm(long_b), _cm(dotted), _cm("short")])

    report = export_backup(RepositoryReader(repo), manifest, tmp_path / "out")
    again = export_backup(RepositoryReader(repo), manifest, tmp_path / "again")

    assert report.files == again.files  # deterministic
    assert len(set(report.files)) == 4 and "shop/configmap/short.yaml" in report.files
    names = set()
    for rel in report.files:
        assert all(len(part.encode()) <= 255 for part in rel.split("/"))
        names.add(yaml.safe_load((tmp_path / "out" / rel).read_text())["metadata"]["name"])
    assert names == {long_a, long_b, dotted, "short"}


def test_segment_hashes_only_names_that_would_not_fit_or_changed() -> None:
    assert segment("web") == "web"
    assert segment("a:b") != segment("a_b") and segment("a:b").startswith("a_b-")
    assert len(segment("z" * 253)) == MAX_SEGMENT + 13


_YAML11_STRINGS = {
    "yes_short": "y",
    "no_short": "n",
    "upper": "Y",
    "off": "off",
    "no": "NO",
    "on": "On",
    "octal": "0123",
    "version": "1.10",
    "date": "2024-01-02",
    "sexagesimal": "1:20",
    "null": "~",
    "empty": "",
    "hex": "0x1F",
    "exp": "1e3",
    "inf": ".inf",
}


class _Yaml11Loader(yaml.SafeLoader):
    """PyYAML's YAML 1.1 reader plus the y/n booleans Go's yaml.v2 also reads."""


_Yaml11Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_Yaml11Loader.add_constructor(
    "tag:yaml.org,2002:bool", lambda loader, node: loader.construct_scalar(node) not in ("n", "N", "no", "off")
)


def test_every_file_parses_back_to_the_same_strings_with_a_yaml_1_1_reader(tmp_path: Path, repo: Repository) -> None:
    manifest = _backup(repo, [_cm("quirks", **_YAML11_STRINGS)])

    report = export_backup(RepositoryReader(repo), manifest, tmp_path / "out")

    for rel in [*report.files, "Kustomization", "shop/Kustomization"]:
        doc = yaml.load((tmp_path / "out" / rel).read_text(), Loader=_Yaml11Loader)  # noqa: S506 - a safe subclass
        if doc["kind"] == "ConfigMap":
            assert doc["data"] == _YAML11_STRINGS


def test_apply_order_and_kustomizations_cover_every_file(tmp_path: Path, repo: Repository) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
    }
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "global"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "aaa"}}
    manifest = _backup(
        repo,
        [
            ("apiextensions.k8s.io", "v1", "customresourcedefinitions", crd),
            ("example.com", "v1", "widgets", widget),
            ("", "v1", "namespaces", ns),
            _cm("settings", ns="aaa"),
        ],
    )
    out = tmp_path / "out"

    report = export_backup(RepositoryReader(repo), manifest, out)

    # kubectl apply -R -f walks files in lexical order: the definitions come first.
    walked = sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml"))
    assert walked == report.files
    assert walked[:2] == [
        "_0-definitions/customresourcedefinition/widgets.example.com.yaml",
        "_0-definitions/namespace/aaa.yaml",
    ]
    assert walked.index("_cluster/widget/global.yaml") < walked.index("aaa/configmap/settings.yaml")
    root = yaml.safe_load((out / "Kustomization").read_text())
    assert root["kind"] == "Kustomization"
    assert root["resources"] == [*walked[:3], "aaa"]
    assert yaml.safe_load((out / "aaa/Kustomization").read_text())["resources"] == ["configmap/settings.yaml"]


def _svc(**spec: Any) -> tuple[str, str, str, dict[str, Any]]:
    meta = {
        "name": "web",
        "namespace": "shop",
        "uid": "u1",
        "resourceVersion": "9",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        # what the backup records of the managedFields it strips: the author set port 80's node port
        "annotations": {"lifeboat.io/user-node-ports": "80/TCP", "team": "web"},
    }
    return ("", "v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})


def test_gitops_export_keeps_only_what_an_author_writes(tmp_path: Path, repo: Repository) -> None:
    owner = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": True}]
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "shop"}}
    rs["metadata"]["ownerReferences"] = owner
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}, "data": {}}
    ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "shop"}}
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e.1", "namespace": "shop"}}
    ports = [
        {"port": 80, "protocol": "TCP", "nodePort": 30080},
        {"port": 443, "protocol": "TCP", "nodePort": 31443},
    ]
    service = _svc(type="NodePort", clusterIP="10.0.0.7", clusterIPs=["10.0.0.7"], ports=ports)
    manifest = _backup(
        repo,
        [
            ("apps", "v1", "replicasets", rs),
            ("", "v1", "secrets", secret),
            ("", "v1", "endpoints", ep),
            ("", "v1", "events", event),
            service,
            _cm("settings"),
        ],
    )
    out = tmp_path / "out"

    report = export_backup(RepositoryReader(repo), manifest, out, for_="gitops", secrets="omit")

    assert report.files == ["shop/configmap/settings.yaml", "shop/service/web.yaml"]
    assert report.skipped == 4
    svc = yaml.safe_load((out / "shop/service/web.yaml").read_text())
    assert svc["metadata"] == {"name": "web", "namespace": "shop", "annotations": {"team": "web"}}
    assert svc["spec"]["ports"] == [
        {"port": 80, "protocol": "TCP", "nodePort": 30080},
        {"port": 443, "protocol": "TCP"},
    ]
    assert "clusterIP" not in svc["spec"] and "clusterIPs" not in svc["spec"]

    included = export_backup(
        RepositoryReader(repo),
        manifest,
        tmp_path / "with",
        for_="gitops",
        secrets="include",
        argocd_repo="https://git.example.com/shop.git",
        argocd_path="clusters/prod/",
    )
    assert "shop/secret/s.yaml" in included.files
    app = yaml.safe_load((tmp_path / "with/_argocd/shop.yaml").read_text())
    assert app["kind"] == "Application" and app["spec"]["destination"]["namespace"] == "shop"
    assert app["spec"]["source"]["repoURL"] == "https://git.example.com/shop.git"
    assert app["spec"]["source"]["path"] == "clusters/prod/shop"
    assert not (out / "_argocd").exists()  # only when asked


def test_gitops_service_node_ports_from_managed_fields() -> None:
    fields = {"f:spec": {"f:ports": {'k:{"port":443,"protocol":"TCP"}': {"f:nodePort": {}}}}}
    _, _, _, obj = _svc(
        type="NodePort",
        ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 443, "protocol": "TCP", "nodePort": 31443}],
    )
    obj["metadata"] = {"name": "web", "managedFields": [{"manager": "helm", "operation": "Update", "fieldsV1": fields}]}
    out = for_gitops(obj)
    assert out is not None and out["metadata"] == {"name": "web"}
    assert out["spec"]["ports"] == [
        {"port": 80, "protocol": "TCP"},
        {"port": 443, "protocol": "TCP", "nodePort": 31443},
    ]


def test_headless_service_keeps_cluster_ip_none() -> None:
    _, _, _, obj = _svc(clusterIP="None", ports=[{"port": 80, "protocol": "TCP"}])
    out = for_gitops(obj)
    assert out is not None and out["spec"]["clusterIP"] == "None"


def _controller_key() -> tuple[Any, bytes]:
    """A sealed-secrets controller's key pair and its self-signed certificate, as kubeseal --fetch-cert gives it."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealed-secret")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _hybrid_decrypt(key: Any, ciphertext: bytes, label: bytes) -> bytes:
    """HybridDecrypt of sealed-secrets pkg/crypto, as the controller runs it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    rsa_len = int.from_bytes(ciphertext[:2], "big")
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label)
    session_key = key.decrypt(ciphertext[2 : 2 + rsa_len], oaep)
    return AESGCM(session_key).decrypt(bytes(12), ciphertext[2 + rsa_len :], None)


def test_sealed_secrets_decrypt_with_the_controller_key_under_strict_scope(tmp_path: Path, repo: Repository) -> None:
    import base64

    from chalicelib.core.sealed_secrets import load_public_key

    key, cert_pem = _controller_key()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"}},
        "data": {"password": base64.b64encode(b"s3cr\x00t").decode(), "user": base64.b64encode(b"admin").decode()},
    }
    manifest = _backup(repo, [("", "v1", "secrets", secret)])
    out = tmp_path / "out"

    export_backup(
        RepositoryReader(repo), manifest, out, for_="gitops", secrets="sealed", sealing_key=load_public_key(cert_pem)
    )

    text = (out / "shop/secret/db.yaml").read_text()
    assert "czNjcgB0" not in text and "YWRtaW4=" not in text  # no value in the clear
    sealed = yaml.safe_load(text)
    assert sealed["apiVersion"] == "bitnami.com/v1alpha1" and sealed["kind"] == "SealedSecret"
    assert sealed["metadata"] == {"name": "db", "namespace": "shop"}
    assert sealed["spec"]["template"] == {
        "metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"}},
        "type": "Opaque",
    }
    encrypted = {k: base64.b64decode(v) for k, v in sealed["spec"]["encryptedData"].items()}
    assert _hybrid_decrypt(key, encrypted["password"], b"shop/db") == b"s3cr\x00t"
    assert _hybrid_decrypt(key, encrypted["user"], b"shop/db") == b"admin"
    # strict scope: sealed for shop/db, useless under another name
    with pytest.raises(ValueError, match="[Dd]ecryption"):
        _hybrid_decrypt(key, encrypted["user"], b"shop/other")

    with pytest.raises(ExportError, match="public key"):
        export_backup(RepositoryReader(repo), manifest, tmp_path / "nokey", secrets="sealed")
