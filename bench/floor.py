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

import gc
import hashlib
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from bench.tasks import _cpu_since  # noqa: E402

RUNS = 3


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
    started, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    objects = pages = metadata_pages = 0
    stream = listing.start(client, scope, ns_objects, namespaced, every_page_will_do)  # type: ignore[arg-type]
    for page in stream:
        if isinstance(page, ListFailure):
            raise SystemExit(f"listing {page.resource.group_resource} failed: {page.error}")
        objects += len(page.items)
        pages += 1
        metadata_pages += page.metadata_only
    return {
        "cpu_s": _cpu_since(started),
        "wall_s": time.perf_counter() - wall,
        "objects": objects,
        "pages": pages,
        "metadata_pages": metadata_pages,  # the pages the server sent as object metadata
    }


def stages() -> dict[str, Any]:
    """Best of ``RUNS``, µs per object: the backup's per-object stages in this process (``items_cpu``), and the
    library calls alone."""
    from bench import items_cpu
    from sandbox.synthetic import synthetic_objects

    measured = items_cpu.best_stages(RUNS)
    objects = list(
        synthetic_objects(
            namespaces=20, configmaps=4750, secrets=4750, deployments=500, size_bytes=1024, server_fields=True
        )
    )
    library = min(_library_calls(objects) for _ in range(RUNS)) / len(objects) * 1e6
    return {
        "stages_full": round(measured["full_total"], 2),
        "stages_noop": round(measured["noop_total"], 2),
        "library_full": round(library, 2),
    }


def _library_calls(objects: list[dict[str, Any]]) -> float:
    """CPU seconds of what storing ``objects`` as new blobs cannot skip: sanitize, canonical JSON, SHA-256 and
    zstd, on frames of the size the writer packs."""
    import zstandard

    from chalicelib.core.canonical import canonical_json
    from chalicelib.core.packs import DEFAULT_FRAME_TARGET, DEFAULT_LEVEL
    from chalicelib.core.sanitize import sanitize_for_backup

    compressor = zstandard.ZstdCompressor(level=DEFAULT_LEVEL)
    started = time.process_time()
    frame: list[bytes] = []
    held = 0
    for obj in objects:  # one object at a time, as a backup stores them: only a frame's blobs are held
        blob = canonical_json(sanitize_for_backup(obj, obj["kind"], obj["apiVersion"]))
        hashlib.sha256(blob).digest()
        frame.append(blob)
        held += len(blob)
        if held >= DEFAULT_FRAME_TARGET:
            compressor.compress(b"".join(frame))
            frame, held = [], 0
    if frame:
        compressor.compress(b"".join(frame))
    return time.process_time() - started


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    result = list_cpu(*args) if command == "list" else stages()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
