"""The report in a real headless Chromium: it loads without a network request or a console
error, its screenshot is not blank, and it prints to PDF.

Chromium's net log lists every request the page makes; any host name resolves to nothing
(``--host-resolver-rules``), so a stray reference would show there and fetch nothing. A canary
page checks that both detectors do see a request and a console error.
"""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from keypolicy.policy.model import Policy
from keypolicy.report import render_report
from tests.report.builders import clinic_like
from tests.report.pdfpages import Page, pages

TIMEOUT_S = 90
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
]


def _run(chromium: str, tmp: Path, page: Path, *action: str) -> tuple[str, list[str]]:
    """Chromium on ``page`` doing ``action``: its log, and the URLs the page asked for."""
    profile, netlog = tmp / f"profile-{page.stem}", tmp / f"net-{page.stem}-{len(action)}.json"
    result = subprocess.run(
        [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={netlog}",
            *action,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr, _page_requests(netlog)


def _page_requests(netlog: Path) -> list[str]:
    """URLs requested on behalf of a page (the browser's own update checks are not)."""
    log: dict[str, Any] = json.loads(netlog.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        url = params.get("url")
        if event["type"] != start_job or url is None or params.get("initiator") == "not an origin":
            continue
        if not str(url).startswith("file:"):
            urls.append(str(url))
    return urls


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (still filtered) scanlines of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, clinic: dict[str, Policy]) -> Path:
    results = {name: clinic_like(p, seed) for seed, (name, p) in enumerate(clinic.items())}
    return render_report(
        results, tmp_path_factory.mktemp("browser") / "compare.html", policies=clinic
    )


def test_page_loads_offline_and_screenshot_is_not_blank(
    chromium: str, report: Path, tmp_path: Path
) -> None:
    png = tmp_path / "shot.png"
    stderr, requests = _run(
        chromium, tmp_path, report, f"--screenshot={png}", "--window-size=1400,2000"
    )
    assert requests == []
    assert _console(stderr) == []
    width, height, raw = _png_pixels(png)
    assert (width, height) == (1400, 2000)
    # Not blank: a good share of the bytes is not white, and there are many distinct values.
    assert len(set(raw)) > 100
    assert sum(1 for b in raw if b != 0xFF) > len(raw) // 20


def test_page_prints_to_pdf(chromium: str, report: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    stderr, requests = _run(
        chromium, tmp_path, report, f"--print-to-pdf={pdf}", "--no-pdf-header-footer"
    )
    assert requests == []
    assert _console(stderr) == []
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    pages = max(int(n) for n in re.findall(rb"/Count (\d+)", data))
    assert pages >= 5  # the whole report, not a first screen


def test_the_detectors_see_a_request_and_a_console_error(chromium: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary.html"
    canary.write_text(
        '<!DOCTYPE html><img src="http://canary.invalid/x.png">'
        "<script>console.log('hello'); notDefined();</script>",
        encoding="utf-8",
    )
    stderr, requests = _run(chromium, tmp_path, canary, f"--screenshot={tmp_path / 'c.png'}")
    assert requests == ["http://canary.invalid/x.png"]
    assert any("Uncaught ReferenceError" in line for line in _console(stderr))


# What the page looks like, measured inside Chromium: a copy of the report with a script that
# measures the layout and writes it into the page, read back with --dump-dom (the report itself
# has no script).
PROBE = """
<script>
window.addEventListener("load", () => {
  const main = document.querySelector("main").getBoundingClientRect();
  const scrolled = (el) => el.closest(".scroll, svg, pre") !== null;
  const over = [];
  for (const el of document.querySelectorAll("main *")) {
    if (scrolled(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.right > main.right + 1) over.push(el.tagName + "." + el.className);
  }
  for (const box of document.querySelectorAll(".scroll")) {
    const r = box.getBoundingClientRect();
    if (r.right > main.right + 1) over.push("scroll box");
  }
  const ticks = [...document.querySelectorAll("svg.chart .tick")].map((t) => {
    const svg = t.ownerSVGElement;
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return parseFloat(getComputedStyle(t).fontSize) * scale;
  }).filter((size) => size > 0);
  const verdict = document.querySelector(".verdict").getBoundingClientRect();
  const headline = document.querySelector("table.headline tbody tr").getBoundingClientRect();
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    width: window.innerWidth,
    height: window.innerHeight,
    pageWidth: document.documentElement.scrollWidth,
    over: over.slice(0, 20),
    smallestTick: Math.min(...ticks),
    verdictBottom: verdict.bottom,
    firstNumberBottom: headline.bottom,
    recommended: document.getElementById("recommended").textContent,
  });
  document.body.appendChild(out);
});
</script>
"""


def _probe(chromium: str, tmp: Path, page: Path, width: int, height: int) -> dict[str, Any]:
    probed = tmp / f"probe-{width}.html"
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    result = subprocess.run(
        [
            chromium,
            *FLAGS,
            f"--user-data-dir={tmp / f'profile-probe-{width}'}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stdout[-2000:]
    data: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return data


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory, clinic: dict[str, Policy]) -> Path:
    """The clinic comparison with a decision to show: clinic-separate refuses x-rays."""
    results = {name: clinic_like(p, seed) for seed, (name, p) in enumerate(clinic.items())}
    for name, summary in results.items():
        for domain in summary["domains"].values():
            domain["rejected"] = 0
        if name == "clinic-separate":
            summary["domains"]["xray"]["rejected"] = 154
        summary["totals"]["rejected"] = sum(d["rejected"] for d in summary["domains"].values())
    return render_report(
        results, tmp_path_factory.mktemp("decided") / "compare.html", policies=clinic
    )


@pytest.mark.parametrize(("width", "height"), [(1400, 900), (800, 1000)])
def test_the_first_screen_holds_the_decision_and_nothing_overflows(
    chromium: str, decided: Path, tmp_path: Path, width: int, height: int
) -> None:
    probe = _probe(chromium, tmp_path, decided, width, height)
    assert probe["width"] == width
    assert probe["recommended"] == "clinic-merged"
    assert probe["verdictBottom"] <= height  # the recommendation and its reasons
    if width >= 1400:
        assert probe["firstNumberBottom"] <= height  # and the numbers begin on the first screen
    assert probe["over"] == []  # nothing sticks out of the page's column
    assert probe["pageWidth"] <= width  # no sideways scrolling of the page itself
    assert probe["smallestTick"] >= 8  # axis text stays readable (px)


def _print(chromium: str, tmp: Path, page: Path) -> list[Page]:
    pdf = tmp / f"{page.stem}.pdf"
    _run(chromium, tmp, page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    return pages(pdf)


def test_the_print_has_a_short_summary_and_no_near_empty_page(
    chromium: str, decided: Path, tmp_path: Path
) -> None:
    printed = _print(chromium, tmp_path, decided)
    assert len(printed) >= 5
    for number, page in enumerate(printed, 1):
        assert page.filled >= 0.2, f"page {number} of {len(printed)} is {page.filled:.0%} filled"
    # The summary is what comes before the appendix (which starts on a page of its own).
    text = decided.read_text(encoding="utf-8")
    start = text.index('<section id="appendix"')
    summary = tmp_path / "summary.html"
    summary.write_text(text[:start] + "</main></body></html>", encoding="utf-8")
    assert 1 <= len(_print(chromium, tmp_path, summary)) <= 3
