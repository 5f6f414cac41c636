"""Where each exported object goes, in what order kubectl applies it, and YAML that Go and YAML 1.1 read alike.

``kubectl apply -R -f DIR`` walks files in lexical path order and ``kustomize`` takes them as listed, so the order
is in the names: ``_0-definitions`` (CustomResourceDefinitions, Namespaces) sorts before ``_cluster`` and every
namespace directory (a namespace name cannot start with ``_``). The kustomization files are named ``Kustomization``,
a name kustomize reads and ``kubectl apply -R -f`` skips (it only reads .json, .yaml and .yml files).
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

DEFINITIONS_DIR = "_0-definitions"
CLUSTER_DIR = "_cluster"
KUSTOMIZATION = "Kustomization"
ARGOCD_DIR = "_argocd"
# Applied first: what other objects need to exist (a CRD before its resources, a Namespace before its contents).
FIRST_KINDS = frozenset({("apiextensions.k8s.io", "customresourcedefinition"), ("", "namespace")})
# A file name is at most 255 bytes; keep room for "-<hash>" and ".yaml".
MAX_SEGMENT = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(name: str) -> str:
    """A file-name segment: characters outside [A-Za-z0-9._-] become "_", and never "", "." or ".."."""
    cleaned = _UNSAFE.sub("_", name)
    if cleaned.strip(".") == "":
        cleaned = "_" + cleaned
    return cleaned


def segment(name: str) -> str:
    """``safe_name`` when it is the name itself and short; otherwise a prefix of it plus the SHA-256 of the name.

    Deterministic, and two names never share a segment unless their hashes' first 48 bits agree.
    """
    cleaned = safe_name(name)
    if cleaned == name and len(cleaned) <= MAX_SEGMENT:
        return cleaned
    return f"{cleaned[:MAX_SEGMENT]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def top_dir(scope: str, group: str, kind: str, cluster_scope: str) -> str:
    if (group, kind.lower()) in FIRST_KINDS:
        return DEFINITIONS_DIR
    return CLUSTER_DIR if scope == cluster_scope else segment(scope)


def kustomizations(files: list[str]) -> dict[str, str]:
    """One ``Kustomization`` per namespace directory listing its files, and one at the root listing the cluster
    files and the namespace directories, in apply order."""
    import yaml

    per_top: dict[str, list[str]] = {}
    for rel in sorted(files):
        top, rest = rel.split("/", 1)
        per_top.setdefault(top, []).append(rest)
    out: dict[str, str] = {}
    root: list[str] = []
    for top in sorted(per_top):
        if top in (DEFINITIONS_DIR, CLUSTER_DIR):
            root.extend(f"{top}/{rest}" for rest in per_top[top])
            continue
        out[f"{top}/{KUSTOMIZATION}"] = yaml.safe_dump(_kustomization(per_top[top]), sort_keys=False)
        root.append(top)
    out[KUSTOMIZATION] = yaml.safe_dump(_kustomization(root), sort_keys=False)
    return out


def argocd_applications(files: list[str], repo_url: str, path_prefix: str = "") -> dict[str, str]:
    """One Argo CD ``Application`` per namespace directory of ``files``, syncing that directory of ``repo_url``."""

    out: dict[str, str] = {}
    for top in sorted({rel.split("/", 1)[0] for rel in files} - {DEFINITIONS_DIR, CLUSTER_DIR}):
        path = f"{path_prefix.strip('/')}/{top}" if path_prefix.strip("/") else top
        app = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": top, "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": path},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": top},
            },
        }
        out[f"{ARGOCD_DIR}/{top}.yaml"] = dump_yaml(app)
    return out


def _kustomization(resources: list[str]) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}


def dump_yaml(doc: Any) -> str:
    """Block YAML in which every string stays a string for YAML 1.1 readers too (``y``, ``off``, ``0123``, dates)."""
    import yaml

    return yaml.dump(
        doc, Dumper=_dumper_class(), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16
    )


@functools.cache
def _dumper_class() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """PyYAML quotes what YAML 1.1 resolves to bool, int, float, null or a timestamp, but not "y" and "n",
        which Go's yaml.v2 (kubectl) reads as booleans."""

    Dumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
    return Dumper
