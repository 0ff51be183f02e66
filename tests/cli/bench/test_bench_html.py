"""report.html opens from disk in a real headless Chromium: it renders, its plots load, it
logs no error and fetches nothing but itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser import CHROMIUM, open_page

from inferfleet.cli.main import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="scripts/setup.sh installs chromium"),
]


def test_the_html_report_renders_with_every_plot(timed_server, tmp_path: Path) -> None:
    url = timed_server(ttft_ms=10, itl_ms=3, instances=2)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--target", url, "--users", "2,4", "--duration", "0.6", "--warmup", "0",
              "--output-tokens", "6", "--out", str(out), "--max-loop-lag-ms", "1000"])  # fmt: skip
    assert exited.value.code in (0, None)
    page = open_page(out / "report.html")
    assert page.errors == []
    assert page.title == "inferfleet bench report"
    assert page.headings[:2] == ["inferfleet bench report", "Steps"]
    assert "Per instance" in page.headings and "Plots" in page.headings
    assert page.tables >= 3
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert sorted(image["alt"] for image in page.images) == pngs
    assert all(image["complete"] and image["width"] > 300 for image in page.images), page.images
    # Self-contained: the file itself, and data: URIs for the plots; nothing from a server.
    assert {request.split(":", 1)[0] for request in page.requested} <= {"file", "data"}
    assert sum(request.startswith("file:") for request in page.requested) == 1


def test_the_check_sees_a_broken_image_and_a_console_error(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><head><title>broken</title></head><body><h1>x</h1>"
        '<img alt="bad" src="data:image/png;base64,AAAA">'
        '<script>console.error("boom")</script></body></html>'
    )
    report = open_page(page)
    assert report.errors == ["boom"]
    assert report.images == [{"alt": "bad", "complete": True, "width": 0, "height": 0}]
