"""An incremental lists object metadata first: which types, when a page of metadata will do, what is read whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page
from chalicelib.backup.metadata_first import MetadataFirst, read_changed, read_whole, wants
from chalicelib.backup.reuse import PriorObjects, same_state
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.kube.errors import Forbidden, Gone, NotFound
from chalicelib.kube.paging import METADATA_ACCEPT, iter_pages
from tests.unit.test_backup_reuse import CM, MemoryWriter, _cm, _collect, _entries

PVC = Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, frozenset({"get", "list"}))
CM_GET = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "list"}))
NODES = Resource("", "v1", "Node", "nodes", False, frozenset({"get", "list"}))


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def _whole(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "ConfigMap", "apiVersion": "v1", **obj}


def _backed_up(objs: list[dict[str, Any]]) -> tuple[MemoryWriter, PriorObjects]:
    writer = MemoryWriter()
    first = _collect(objs, prior=None, writer=writer)
    return MemoryWriter(set(writer.added)), PriorObjects(_entries(first))


def test_types_listed_as_metadata_first():
    assert wants(CM_GET)
    assert not wants(CM)  # no get: a changed object could not be read alone
    assert not wants(NODES)  # cluster types are listed apart, whole
    assert not wants(PVC)  # a claim names its volume and class: the backup reads its spec


def test_a_page_will_do_while_few_objects_changed():
    objs = [_cm(f"cm-{i}", uid=f"u-{i}") for i in range(64)]
    _, prior = _backed_up(objs)
    will_do = MetadataFirst(BackupScope(), frozenset({"shop"}), lambda: prior)(CM_GET)
    assert will_do is not None
    page = [_partial(o) for o in objs]
    assert will_do(page)
    changed = [_partial(_cm(f"cm-{i}", uid=f"u-{i}", rv="11")) for i in range(5)] + page[5:]
    assert not will_do(changed)  # 5 > max(4, 64 // 16): reading the page again whole is cheaper
    assert will_do(changed[1:])  # 4 GETs will do
    elsewhere = [_partial({"metadata": {**o["metadata"], "namespace": "other"}}) for o in objs]
    assert will_do(elsewhere)  # objects the backup does not keep need nothing


def test_while_the_parents_entries_are_being_read_a_page_will_do_without_waiting_for_them():
    objs = [_cm(f"cm-{i}", uid=f"u-{i}") for i in range(64)]
    _, prior = _backed_up(objs)
    asked: list[bool] = []
    ready = [False]

    def reading() -> PriorObjects:
        asked.append(True)
        return prior

    will_do = MetadataFirst(BackupScope(), frozenset({"shop"}), reading, ready=lambda: ready[0])(CM_GET)
    assert will_do is not None
    changed = [_partial(_cm(f"cm-{i}", uid=f"u-{i}", rv="11")) for i in range(64)]
    assert will_do(changed) and asked == []  # kept as metadata: the collector reads whole what changed
    ready[0] = True
    assert not will_do(changed) and asked == [True]  # once read, the entries judge the page


def test_without_the_parents_entries_no_page_of_objects_will_do():
    will_do = MetadataFirst(BackupScope(), frozenset({"shop"}), lambda: None)(CM_GET)
    assert will_do is not None and not will_do([_partial(_cm())])

    def unreadable() -> PriorObjects:
        raise RuntimeError("the parent's trees did not read")

    failing = MetadataFirst(BackupScope(), frozenset({"shop"}), unreadable)(CM_GET)
    assert failing is not None and not failing([_partial(_cm())])


def test_an_empty_page_will_do_without_waiting_for_the_parent():
    def never() -> PriorObjects:
        raise AssertionError("waited for the parent")

    will_do = MetadataFirst(BackupScope(), frozenset({"shop"}), never)(CM_GET)
    assert will_do is not None and will_do([])


def _list_server(objs: list[dict[str, Any]], calls: list[tuple[str | None, bool]]) -> Any:
    """A list endpoint serving pages of two, as metadata when asked; its continue token is the next offset."""

    def get(path: str, params: dict[str, Any], accept: str = "application/json") -> dict[str, Any]:
        start = int(params.get("continue") or 0)
        partial = accept == METADATA_ACCEPT
        calls.append((params.get("continue"), partial))
        items = [_partial(o) if partial else dict(o) for o in objs[start : start + 2]]
        more = start + 2 < len(objs)
        return {
            "kind": "PartialObjectMetadataList" if partial else "ConfigMapList",
            "apiVersion": "meta.k8s.io/v1" if partial else "v1",
            "items": items,
            "metadata": {"continue": str(start + 2) if more else None, "resourceVersion": "7"},
        }

    return get


def test_a_refused_page_is_read_again_whole_with_its_token_and_so_is_the_rest():
    objs = [_cm(f"cm-{i}", uid=f"u-{i}") for i in range(6)]
    calls: list[tuple[str | None, bool]] = []
    verdicts = iter([True, False])
    pages = list(
        iter_pages(_list_server(objs, calls), "/api/v1/configmaps", limit=2, metadata_first=lambda _: next(verdicts))
    )
    assert calls == [(None, True), ("2", True), ("2", False), ("4", False)]
    assert [p.metadata_only for p in pages] == [True, False, False]
    assert [i["metadata"]["name"] for p in pages for i in p.items] == [o["metadata"]["name"] for o in objs]
    assert pages[0].items[0]["kind"] == "PartialObjectMetadata" and pages[1].items[0]["kind"] == "ConfigMap"


def test_a_refused_first_page_follows_the_token_of_the_page_read_again():
    objs = [_cm(f"cm-{i}", uid=f"u-{i}") for i in range(3)]
    calls: list[tuple[str | None, bool]] = []
    pages = list(iter_pages(_list_server(objs, calls), "/api/v1/configmaps", limit=2, metadata_first=lambda _: False))
    assert calls == [(None, True), (None, False), ("2", False)]
    assert [len(p.items) for p in pages] == [2, 1] and not any(p.metadata_only for p in pages)


def test_a_server_without_metadata_lists_answers_whole():
    def get(path: str, params: dict[str, Any], accept: str = "application/json") -> dict[str, Any]:
        return {"kind": "ConfigMapList", "apiVersion": "v1", "items": [dict(_cm())], "metadata": {}}

    (page,) = iter_pages(get, "/api/v1/configmaps", metadata_first=lambda _: pytest.fail("asked about a whole page"))
    assert not page.metadata_only and page.items[0]["kind"] == "ConfigMap"


class _Client:
    def __init__(self, objects: dict[str, dict[str, Any]], fail: Exception | None = None) -> None:
        self.objects = objects
        self.fail = fail
        self.paths: list[str] = []

    def get(self, path: str) -> dict[str, Any]:
        self.paths.append(path)
        if self.fail is not None:
            raise self.fail
        name = path.rsplit("/", 1)[1]
        if name not in self.objects:
            raise NotFound(f"configmaps {name!r} not found")
        return _whole(self.objects[name])


def _incremental(objs: list[dict[str, Any]]) -> tuple[ItemCollector, MemoryWriter]:
    writer, prior = _backed_up(objs)
    return ItemCollector(BackupScope(), ["shop"], writer, prior=prior), writer


def test_what_changed_is_left_to_be_read_whole_and_the_result_is_a_full_backups(monkeypatch):
    objs = [_cm(f"cm-{i}", uid=f"u-{i}") for i in range(4)]
    collector, writer = _incremental(objs)
    now = [objs[0], _cm("cm-1", uid="u-1", rv="11", data="edited"), objs[2], _cm("cm-3", uid="u-9", data="new")]
    collector.handle_page(Page(CM_GET, [_partial(o) for o in now], metadata_only=True), None)
    assert collector.reused == 2 and writer.added == {}  # nothing stored from metadata
    unread = collector.take_unread()
    assert [o["metadata"]["name"] for o in unread] == ["cm-1", "cm-3"] and collector.take_unread() == []
    client = _Client({o["metadata"]["name"]: o for o in now})
    with ThreadPoolExecutor(2) as pool:
        whole = read_whole(client, CM_GET, unread, pool)
    assert client.paths == ["/api/v1/namespaces/shop/configmaps/cm-1", "/api/v1/namespaces/shop/configmaps/cm-3"]
    collector.handle_page(Page(CM_GET, whole), None)
    full = _collect([_whole(o) for o in now], prior=None)
    assert sorted(_entries(collector)) == sorted(_entries(full))
    assert collector.objects == 4


def test_a_blob_the_repository_lost_is_read_whole_too():
    collector, _ = _incremental([_cm()])
    collector.writer = MemoryWriter()  # the index no longer holds the blob
    collector.handle_page(Page(CM_GET, [_partial(_cm())], metadata_only=True), None)
    assert [o["metadata"]["name"] for o in collector.take_unread()] == ["app"] and collector.reused == 0


def test_an_object_deleted_since_the_list_is_left_out():
    listed = [_partial(_cm("a", uid="u-a")), _partial(_cm("b", uid="u-b", rv="12"))]
    with ThreadPoolExecutor(1) as pool:
        assert read_whole(_Client({"a": _cm("a", uid="u-a")}), CM_GET, listed, pool) == [_whole(_cm("a", uid="u-a"))]


def test_a_failed_read_raises():
    with ThreadPoolExecutor(1) as pool, pytest.raises(Forbidden):
        read_whole(_Client({}, fail=Forbidden('configmaps "app" is forbidden')), CM_GET, [_partial(_cm())], pool)


class _PagingClient(_Client):
    """Also serves the configmaps collection: the page a continue token names, or Gone for ``expired``."""

    def __init__(self, objects: dict[str, dict[str, Any]], page: list[dict[str, Any]]) -> None:
        super().__init__(objects)
        self.page = page
        self.pages_again: list[str | None] = []

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:  # type: ignore[override]
        if params is None:
            return super().get(path)
        self.pages_again.append(params.get("continue"))
        if params.get("continue") == "expired":
            raise Gone("the continue token is too old")
        return {"kind": "ConfigMapList", "apiVersion": "v1", "items": [dict(o) for o in self.page], "metadata": {}}


def _changed_page(token: str | None) -> tuple[list[dict[str, Any]], Page, dict[str, dict[str, Any]]]:
    objs = [_cm(f"cm-{i}", uid=f"u-{i}", rv="11", data="edited") for i in range(8)]
    listed = [_partial(o) for o in objs[:6]]  # six of the eight changed: more than a page of 8 allows GETs for
    page = Page(CM_GET, [_partial(o) for o in objs], metadata_only=True, requested_with=token)
    return listed, page, {o["metadata"]["name"]: o for o in objs}


def _read(client: Any, listed: list[dict[str, Any]], page: Page) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return read_changed(
            client, CM_GET, listed, page, pool, path="/api/v1/configmaps", label_selector=None, page_size=8
        )


def test_a_page_most_of_which_changed_is_read_again_whole_with_its_token():
    listed, page, objects = _changed_page("t-2")
    client = _PagingClient(objects, list(objects.values()))
    whole = _read(client, listed, page)
    assert client.pages_again == ["t-2"] and client.paths == []  # one request, no GET
    assert [o["metadata"]["name"] for o in whole] == [f"cm-{i}" for i in range(6)]
    assert all(o["kind"] == "ConfigMap" and o["data"] == {"k": "edited"} for o in whole)  # whole, typed


def test_a_first_page_or_a_forgotten_token_is_read_by_get():
    for token, asked in ((None, []), ("expired", ["expired"])):
        listed, page, objects = _changed_page(token)
        client = _PagingClient(objects, list(objects.values()))
        whole = _read(client, listed, page)
        assert client.pages_again == asked  # a first page asked for again would start another snapshot
        assert sorted(client.paths) == [f"/api/v1/namespaces/shop/configmaps/cm-{i}" for i in range(6)]
        assert sorted(o["metadata"]["name"] for o in whole) == [f"cm-{i}" for i in range(6)]


def test_what_a_page_read_again_lacks_is_read_by_get():
    listed, page, objects = _changed_page("t-2")
    client = _PagingClient(objects, [objects[f"cm-{i}"] for i in range(3)])  # a server that answered otherwise
    whole = _read(client, listed, page)
    assert sorted(client.paths) == [f"/api/v1/namespaces/shop/configmaps/cm-{i}" for i in (3, 4, 5)]
    assert sorted(o["metadata"]["name"] for o in whole) == [f"cm-{i}" for i in range(6)]


def test_a_large_page_is_judged_by_a_sample_of_its_objects(monkeypatch):
    import chalicelib.backup.metadata_first as metadata_first

    objs = [_cm(f"cm-{i}", uid=f"u-{i}") for i in range(512)]
    _, prior = _backed_up(objs)
    compared: list[str] = []

    def counting(value: bytes, rv: str, name: str) -> bool:
        compared.append(name)
        return same_state(value, rv, name)

    monkeypatch.setattr(metadata_first, "same_state", counting)
    will_do = MetadataFirst(BackupScope(), frozenset({"shop"}), lambda: prior)(CM_GET)
    assert will_do is not None
    page = [_partial(o) for o in objs]
    assert will_do(page) and compared == [f"cm-{i}" for i in range(0, 512, 8)]
    # A third of the page changed: the sample sees it, and the page is read again whole.
    changed = [_partial(_cm(f"cm-{i}", uid=f"u-{i}", rv="11")) if i % 3 == 0 else o for i, o in enumerate(page)]
    assert not will_do(changed)
    # One object in a hundred: a GET each will do, whichever of them the sample sees.
    few = [_partial(_cm(f"cm-{i}", uid=f"u-{i}", rv="11")) if i % 100 == 0 else o for i, o in enumerate(page)]
    assert will_do(few)
