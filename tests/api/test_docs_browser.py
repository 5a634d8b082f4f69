"""/docs in a real browser (Debian's chromium, driven by Playwright): the page renders
with no request leaving the edge, the Authorize button takes a token, and "Try it out"
on POST /v1/messages gets 202 (issue 11: 7)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.api.conftest import EdgeFactory

CHROMIUM = os.environ.get("COURIER_TEST_CHROMIUM", "/usr/bin/chromium")
playwright = pytest.importorskip("playwright.async_api", reason="playwright (dev extra)")

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"
)


async def test_swagger_ui_offline_authorize_and_try_it_out(
    edge: EdgeFactory, tmp_path: Path
) -> None:
    node = await edge()
    token = node.token("backend", role="service")
    requests: list[str] = []
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1600})
            page.on("request", lambda req: requests.append(req.url))
            await page.goto(f"{node.url}/docs")
            await page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
            assert "Courier" in await page.inner_text(".swagger-ui .info .title")

            await page.click("button.authorize")
            await page.fill(".auth-container input", token)
            await page.click(".auth-btn-wrapper button.authorize")
            await page.click(".auth-btn-wrapper button.btn-done")

            op = page.locator("#operations-messages-enqueue_v1_messages_post")
            await op.locator(".opblock-summary").click()
            await op.locator("button.execute").click()
            status = op.locator(".live-responses-table tr.response .response-col_status").first
            await status.wait_for(timeout=15_000)
            assert (await status.inner_text()).strip() == "202"
            body = await op.locator(".live-responses-table tr.response pre").first.inner_text()
            assert '"status": "queued"' in body
            await page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
        finally:
            await browser.close()
    assert requests and all(u.startswith(node.url) for u in requests), requests


async def test_redoc_offline(edge: EdgeFactory, tmp_path: Path) -> None:
    """/redoc renders the API with no request leaving the edge (its bundle's footer
    logo came from cdn.redoc.ly)."""
    node = await edge()
    requests: list[str] = []
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda req: requests.append(req.url))
            await page.goto(f"{node.url}/redoc")
            await page.wait_for_selector(".api-info h1", timeout=30_000)
            assert "Courier" in await page.inner_text(".api-info h1")
            assert await page.locator("[data-section-id^='tag/messages']").count() >= 1
            await page.wait_for_load_state("networkidle")
            await page.screenshot(path=str(tmp_path / "redoc.png"), full_page=False)
        finally:
            await browser.close()
    local = (node.url, f"blob:{node.url}")  # ReDoc's search worker runs from a blob
    assert requests and all(u.startswith(local) for u in requests), requests
    assert (
        b"cdn.redoc.ly"
        not in (await node.http.get("/docs-assets/offline/redoc.standalone.js")).content
    )
