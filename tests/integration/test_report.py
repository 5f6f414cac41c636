"""``lifeboat report``: one static page, rendered by headless Chromium, whose figures are the catalog's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from chalicelib.catalog.verifications import VerificationCatalog, VerificationRecord
from chalicelib.cli.main import main
from chalicelib.cli.output import EXIT_OK
from chalicelib.core.policies import Policy
from tests.conftest import TEST_BUCKET, TEST_TABLE
from tests.support.builders import record_backup
from tests.support.chromium import dump_dom, screenshot

AWS = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", "us-east-1"]


class Figures(HTMLParser):
    """Every element carrying data-value, by its first class."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[float]] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.external.append(str(found[name]))
        if "data-value" in found and found.get("class"):
            self.values.setdefault(str(found["class"]).split()[0], []).append(float(str(found["data-value"])))


@pytest.fixture
def catalog_state(services: Any) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    policy = Policy.from_dict(
        {
            "name": "shop-nightly",
            "cluster": "prod",
            "schedule": "0 2 * * *",
            "scope": {"include_namespaces": ["shop"]},
            "rpo_target_minutes": 1500,
            "verify": {"schedule": "0 4 * * 0", "rto_target_minutes": 20},
        }
    )
    services.policy_catalog().create(policy, next_run_at=None, now=now - timedelta(days=10))
    started = [now - timedelta(days=d, hours=h) for d, h in ((3, 0), (2, 0), (1, 6))]
    for index, when in enumerate(started):
        record_backup(
            services.catalog(), "prod", f"{when:%Y%m%dT%H%M%S}Z-00000{index}", policy="shop-nightly", started=when
        )
    runs = VerificationCatalog(services.client("dynamodb"), TEST_TABLE)
    rtos = [300.0, 1500.0]
    for index, rto in enumerate(rtos):
        run_id = f"v00000000000{index}"
        created = (now - timedelta(days=2 - index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        runs.create(
            VerificationRecord(run_id, "shop-nightly", "prod", "prod", created_at=created, rto_target_minutes=20)
        )
        runs.claim(run_id, "w", created, created)
        runs.finish(
            run_id,
            "w",
            {
                "state": "Succeeded",
                "rto_s": rto,
                "rto_exceeded": rto > 1200,
                "phases": {"fetch": 1.5, "apply": rto - 10, "check": 8.5},
                "checked": 42,
                "backup_id": "b",
            },
        )
    return {"now": now, "started": started, "rtos": rtos}


def test_the_report_renders_in_chromium_with_the_catalogs_figures(
    capsys: Any, services: Any, catalog_state: dict[str, Any], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    assert main(["report", "--to", str(page), *AWS]) == EXIT_OK

    dom = dump_dom(page)
    figures = Figures()
    figures.feed(dom)

    assert figures.external == []  # nothing fetched from anywhere: assets are inline
    started = catalog_state["started"]
    gaps = [(b - a).total_seconds() / 60 for a, b in zip(started, started[1:], strict=False)]
    points = figures.values["point"]
    rpo_points, rto_points = points[: len(gaps) + 1], points[len(gaps) + 1 :]
    assert rpo_points[:-1] == pytest.approx(gaps, abs=0.01)
    assert rpo_points[-1] == pytest.approx(figures.values["rpo-current"][0], abs=0.01)
    assert rto_points == pytest.approx([r / 60 for r in catalog_state["rtos"]], abs=0.01)
    assert figures.values["target"] == [1500.0, 20.0]  # RPO and RTO target lines
    assert figures.values["rto-latest"] == [pytest.approx(25.0)]
    assert "rto-latest over" in dom  # 25 min is over the 20 min target, and the page says so
    assert figures.values["phase"] == pytest.approx([1.5, 1490.0, 8.5])

    image = screenshot(page, tmp_path / "report.png")
    from PIL import Image

    with Image.open(image) as shot:
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, charts and bars, not a blank page
    background = max(colours)[0] / sum(count for count, _ in colours)
    assert background < 0.97
