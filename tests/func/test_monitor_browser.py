"""The monitoring report in a real browser: Debian's headless Chromium driven by Playwright's
client (never a downloaded browser build). Its charts must have a size and paint both series,
and the page must fetch nothing but itself."""

from __future__ import annotations

import shutil
import struct
import zlib

import numpy as np
import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def decode_png(data: bytes) -> np.ndarray:
    """RGB(A) pixels of an 8-bit, non-interlaced PNG (what Chromium writes), filters undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6)
    channels = 4 if colour == 6 else 3
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        above = out[y - 1] if y else np.zeros_like(line)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + above) & 255
        else:  # sub, average, paeth depend on the pixel to the left: byte by byte
            row = np.zeros_like(line)
            for x in range(line.size):
                left = row[x - channels] if x >= channels else 0
                upper_left = above[x - channels] if x >= channels else 0
                if kind == 1:
                    predicted = left
                elif kind == 3:
                    predicted = (left + above[x]) // 2
                else:
                    p = left + above[x] - upper_left
                    pa, pb, pc = abs(p - left), abs(p - above[x]), abs(p - upper_left)
                    predicted = left if pa <= pb and pa <= pc else (above[x] if pb <= pc else upper_left)
                row[x] = (line[x] + predicted) & 255
            out[y] = row
    return out.reshape(height, width, channels)[:, :, :3]


def test_report_renders_its_charts_in_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python client is in nbops[test]")
    from sklearn.linear_model import LogisticRegression

    import nbops
    from nbops.monitoring.html import CURRENT_COLOUR, REFERENCE_COLOUR
    from nbops.testing import register_model, write_capture

    rng = np.random.default_rng(0)
    import pandas as pd

    reference = pd.DataFrame({"speed": rng.normal(50, 5, 3000), "load": rng.gamma(2, 2, 3000)})
    model = LogisticRegression().fit(reference, (reference["speed"] > 50).astype(int))
    (tmp_path / "params.yaml").write_text("")
    register_model(tmp_path, "viewer", model, reference)
    current = pd.DataFrame({"speed": rng.normal(55, 5, 2000), "load": rng.gamma(2, 2, 2000)})
    write_capture(tmp_path / "capture", "viewer", current, predictions=model.predict(current).tolist(),
                  probabilities=model.predict_proba(current).tolist())
    result = nbops.monitor("viewer", capture=str(tmp_path / "capture"), root=tmp_path, registry=str(tmp_path / "registry"))
    page_file = tmp_path / "report.html"
    page_file.write_text(result.to_html())

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_file.as_uri())
            charts = page.eval_on_selector_all(
                "figure svg",
                "els => els.map(e => { const r = e.getBoundingClientRect();"
                " const bars = [...e.querySelectorAll('rect')].filter(b => b.getBoundingClientRect().height > 0.5);"
                " return [r.width, r.height, bars.length]; })",
            )
            assert len(charts) == 3, charts  # two columns and the score
            assert all(width >= 300 and height >= 150 and bars >= 8 for width, height, bars in charts), charts
            pixels = decode_png(page.locator("figure").first.screenshot())
        finally:
            browser.close()
    assert requested == [page_file.as_uri()]

    def count(colour: str) -> int:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(pixels - rgb).sum(axis=2) < 12).sum())

    background = (pixels.min(axis=2) > 245).mean()
    assert count(REFERENCE_COLOUR) > 500 and count(CURRENT_COLOUR) > 500 and background < 0.97
