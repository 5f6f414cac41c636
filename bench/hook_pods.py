"""Velero hook annotations: the pod list a backup makes to find them, timed against the Kubernetes API test server.

The cluster holds ``--pods`` pods in ``--namespaces`` namespaces, one in ten annotated with a pre and a post hook.
``HookRunner.plan`` lists every pod of the cluster (``GET /api/v1/pods``, pages of 500) and keeps those in the
backup's namespaces; it is timed for a backup of every namespace and for a backup of one. Beside it, for comparison,
the per-namespace list a one-namespace backup could make instead (``GET /api/v1/namespaces/NS/pods``).

Prints, last, one JSON line: pods, namespaces, and per case ``*_ms`` (wall time, best of ``--runs``), ``*_requests``
(list pages fetched) and ``*_hooks`` (pre hooks found).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.harness import _kube_client, load_objects, servers  # noqa: E402


def _pods(pods: int, namespaces: int) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"hooks-{n}"}} for n in range(namespaces)
    ]
    objects += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": f"hooks-{n}"}}
        for n in range(namespaces)
    ]
    for i in range(pods):
        annotations = {}
        if i % 10 == 0:
            annotations = {
                "pre.hook.backup.velero.io/command": '["/bin/sh", "-c", "sync"]',
                "post.hook.backup.velero.io/command": '["/bin/true"]',
            }
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"pod-{i}", "namespace": f"hooks-{i % namespaces}", "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            }
        )
    return objects


class _Counting:
    """The client, with its list pages counted (one page is one request)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pages = 0

    def list_pages(self, path: str, **kwargs: Any) -> Any:
        for page in self.client.list_pages(path, **kwargs):
            self.pages += 1
            yield page


def _best(runs: int, work: Any) -> tuple[float, int, int]:
    best, pages, found = float("inf"), 0, 0
    for _ in range(runs):
        started = time.perf_counter()
        pages, found = work()
        best = min(best, (time.perf_counter() - started) * 1000)
    return round(best, 1), pages, found


def main() -> None:
    from chalicelib.backup.hooks import HookRunner
    from chalicelib.core.hooks import HookSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = HookSettings.from_dict({})
    names = [f"hooks-{n}" for n in range(args.namespaces)]
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as srv:
        load_objects(srv, _pods(args.pods, args.namespaces))
        client = _kube_client(srv)
        runner = HookRunner()

        def plan(namespaces: list[str]) -> Any:
            def work() -> tuple[int, int]:
                counting = _Counting(client)
                hooks = runner.plan(settings, counting, namespaces)
                return counting.pages, len(hooks.pre)

            return work

        def per_namespace(namespace: str) -> Any:
            def work() -> tuple[int, int]:
                counting = _Counting(client)
                path = f"/api/v1/namespaces/{namespace}/pods"
                items = [p for page in counting.list_pages(path) for p in page.items]
                annotated = [p for p in items if (p["metadata"].get("annotations") or {})]
                return counting.pages, len(annotated)

            return work

        result: dict[str, Any] = {"pods": args.pods, "namespaces": args.namespaces}
        for case, work in (
            ("all_namespaces", plan(names)),
            ("one_namespace", plan(names[:1])),
            ("one_namespace_own_list", per_namespace(names[0])),
        ):
            ms, pages, found = _best(args.runs, work)
            result.update({f"{case}_ms": ms, f"{case}_requests": pages, f"{case}_hooks": found})
            print(f"{case:<24} {ms:>8} ms {pages:>4} requests {found:>5} pre hooks")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
