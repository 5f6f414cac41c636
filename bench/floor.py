"""What a backup's CPU is made of, each part measured alone: the parts it cannot do without bound its figures.

Each command runs in a child process of ``bench/backup.py`` and prints one JSON object:

  list KUBECONFIG MODE PATTERN   CPU of listing every namespaced type a backup of PATTERN lists, as it lists them
                                 (``Listing.start``: its threads, its page size), nothing done with the pages;
                                 MODE ``metadata`` as a no-op lists them (every page of metadata will do), ``whole``
                                 as a full backup does. Discovery and the namespace list are not in it (they are in
                                 the empty-scope backup's fixed cost).
  stages                         CPU per object of the backup's own per-object stages without HTTP
                                 (``bench/items_cpu.py``: select, sanitize, serialize, hash, pack, trees; the no-op's
                                 index and parent load and compare), and of the library calls alone that a new
                                 object cannot skip: sanitize, canonical JSON, SHA-256 and zstd on its frame.

The floor of a no-op's CPU is the empty-scope backup's (claim, lease, index, manifest, catalog, events, discovery)
plus listing the metadata: no implementation of the comparison can take it below that. The floor of a full
backup's adds listing whole and the library calls.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

RUNS = 3


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def list_cpu(kubeconfig: str, mode: str, pattern: str) -> dict[str, Any]:
    """The listing alone: ``Listing.start`` over the namespaced types, every page taken and dropped."""
    from chalicelib.backup.collect import Listing
    from chalicelib.backup.listing import ListFailure, select_resources
    from chalicelib.backup.service import BackupService
    from chalicelib.core.scope import BackupScope
    from chalicelib.kube import KubeClient

    if mode not in ("metadata", "whole"):
        raise SystemExit(f"mode must be metadata or whole, not {mode!r}")
    defaults = BackupService.__init__.__kwdefaults__ or {}
    listing = Listing(workers=defaults["list_workers"], page_size=defaults["page_size"])
    scope = BackupScope(include_namespaces=(pattern,))
    client = KubeClient.from_kubeconfig(Path(kubeconfig).read_text())
    resources = client.discover()
    namespaces_res = next(r for r in resources if r.group_resource == "namespaces")
    ns_objects, _ = listing.namespaces(client, namespaces_res, scope)
    namespaced, _ = select_resources(resources, scope)
    every_page_will_do = (lambda res: lambda items: True) if mode == "metadata" else None
    gc.freeze()  # as a backup runs (``service._heap_frozen``): the collector's passes leave the warm heap alone
    started, wall = _cpu(), time.perf_counter()
    objects = pages = metadata_pages = 0
    stream = listing.start(client, scope, ns_objects, namespaced, every_page_will_do)  # type: ignore[arg-type]
    for page in stream:
        if isinstance(page, ListFailure):
            raise SystemExit(f"listing {page.resource.group_resource} failed: {page.error}")
        objects += len(page.items)
        pages += 1
        metadata_pages += page.metadata_only
    return {
        "cpu_s": _cpu() - started,
        "wall_s": time.perf_counter() - wall,
        "objects": objects,
        "pages": pages,
        "metadata_pages": metadata_pages,  # the pages the server sent as object metadata
    }


def stages() -> dict[str, Any]:
    """Best of ``RUNS``, µs per object: the backup's per-object stages in this process, and the library calls."""
    import zstandard

    from bench import items_cpu
    from chalicelib.core.canonical import canonical_json
    from chalicelib.core.packs import DEFAULT_FRAME_TARGET, DEFAULT_LEVEL
    from chalicelib.core.sanitize import sanitize_for_backup
    from chalicelib.repository import Repository
    from chalicelib.repository.store import MemoryObjectStore
    from sandbox.synthetic import synthetic_objects

    objects = list(
        synthetic_objects(
            namespaces=20, configmaps=4750, secrets=4750, deployments=500, size_bytes=1024, server_fields=True
        )
    )
    best: dict[str, float] = {}

    def keep(key: str, seconds: float) -> None:
        best[key] = min(best.get(key, float("inf")), seconds / len(objects) * 1e6)

    compressor = zstandard.ZstdCompressor(level=DEFAULT_LEVEL)
    for _ in range(RUNS):
        namespaces, listed = items_cpu.pages(copy.deepcopy(objects))
        repo = Repository.open(MemoryObjectStore(), create=True)
        full = items_cpu.run(repo, namespaces, listed, None)
        namespaces, listed = items_cpu.pages(copy.deepcopy(objects))
        noop = items_cpu.run(repo, namespaces, listed, full["manifest"])
        keep("stages_full", full["open"] + full["pages"] + full["trees"])
        keep("stages_noop", noop["open"] + noop["pages"] + noop["trees"])

        started = time.process_time()
        blobs = [canonical_json(sanitize_for_backup(o, o["kind"], o["apiVersion"])) for o in objects]
        for blob in blobs:
            hashlib.sha256(blob).digest()
        frame: list[bytes] = []
        held = 0
        for blob in blobs:
            frame.append(blob)
            held += len(blob)
            if held >= DEFAULT_FRAME_TARGET:
                compressor.compress(b"".join(frame))
                frame, held = [], 0
        if frame:
            compressor.compress(b"".join(frame))
        keep("library_full", time.process_time() - started)
    return {key: round(value, 2) for key, value in best.items()}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    result = list_cpu(*args) if command == "list" else stages()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
