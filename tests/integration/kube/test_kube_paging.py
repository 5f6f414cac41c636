"""KubeClient's paged lists over real HTTPS: continue tokens, selectors, expired lists restarted, errors mid-list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from chalicelib.kube import Gone, KubeClient
from tests.support.kube import CONFIGMAPS, PAGE_LIMIT, PAGED_COUNT, Sleeps, configmap, paged_path


@pytest.fixture(scope="module")
def paged_namespace(kubeconfig_path: Path) -> Iterator[str]:
    """A namespace holding PAGED_COUNT labelled ConfigMaps, created by 16 threads sharing one client."""
    name = f"lbt-pages-{uuid.uuid4().hex[:6]}"
    with KubeClient.from_kubeconfig(kubeconfig_path.read_text()) as kube:
        kube.create_namespace(name)
        try:
            with ThreadPoolExecutor(16) as pool:
                list(
                    pool.map(
                        lambda i: kube.create(CONFIGMAPS, configmap(f"cm-{i:04d}", name, paged="yes")),
                        range(PAGED_COUNT),
                    )
                )
            yield name
        finally:
            kube.delete_namespace(name)


def test_paging_follows_continue_tokens(client: KubeClient, paged_namespace: str) -> None:
    pages = list(client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT, label_selector="paged=yes"))

    names = [item["metadata"]["name"] for page in pages for item in page.items]
    assert len(names) == PAGED_COUNT and len(set(names)) == PAGED_COUNT
    assert len(pages) >= PAGED_COUNT // PAGE_LIMIT
    assert all(len(page.items) <= PAGE_LIMIT for page in pages)
    assert not any(page.restarted for page in pages)
    assert all(page.resource_version for page in pages)
    # List items come without their type; pages fill it in so every item can be stored on its own.
    assert {(i["apiVersion"], i["kind"]) for p in pages for i in p.items} == {("v1", "ConfigMap")}


@pytest.mark.fakeonly
def test_paging_is_exact_on_the_test_server(fake: Any, client: KubeClient, paged_namespace: str) -> None:
    pages = list(client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT))
    assert [len(page.items) for page in pages] == [PAGE_LIMIT] * (PAGED_COUNT // PAGE_LIMIT)


def test_field_selector_narrows_the_list(client: KubeClient, paged_namespace: str) -> None:
    pages = list(client.list_pages(paged_path(paged_namespace), field_selector="metadata.name=cm-0042"))
    assert [item["metadata"]["name"] for page in pages for item in page.items] == ["cm-0042"]


@pytest.mark.fakeonly
def test_expired_continue_token_restarts_the_list(fake: Any, client: KubeClient, paged_namespace: str) -> None:
    collected: list[str] = []
    restarted_at: list[int] = []
    for index, page in enumerate(client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT)):
        if page.restarted:
            restarted_at.append(index)
            collected.clear()
        collected.extend(item["metadata"]["name"] for item in page.items)
        if index == 2:
            fake.expire_continue_tokens()

    assert restarted_at == [3]
    assert collected[0] == "cm-0000"  # the restarted page is the list's first page again
    assert len(collected) == PAGED_COUNT and len(set(collected)) == PAGED_COUNT


@pytest.mark.fakeonly
def test_restarts_are_bounded(fake: Any, client: KubeClient, paged_namespace: str) -> None:
    pages = client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT)
    restarts = 0
    with pytest.raises(Gone) as err:  # noqa: PT012 -- the error comes from iterating the pages
        for page in pages:
            restarts += page.restarted
            fake.expire_continue_tokens()  # every token expires before it is used: the list can never finish
    assert restarts == 3
    assert err.value.status == 410


@pytest.mark.fakeonly
@pytest.mark.parametrize("status", [500, 503, 429])
def test_error_mid_list_is_retried_in_place(
    fake: Any, client: KubeClient, sleeps: Sleeps, paged_namespace: str, status: int
) -> None:
    path = paged_path(paged_namespace)
    fake.faults.inject(status, method="GET", path=f"^{path}$", nth=3, count=1)

    pages = list(client.list_pages(path, limit=PAGE_LIMIT))

    assert sum(len(page.items) for page in pages) == PAGED_COUNT
    assert not any(page.restarted for page in pages)
    assert len(sleeps) == 1
