"""The BentoML web UI at / works in a real (headless) Chromium."""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Debian's chromium here; GitHub's Ubuntu runners ship Google Chrome instead.
CHROMIUM = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (path := shutil.which(name))
    ),
    "/usr/bin/chromium",
)


def test_try_it_out_on_predict_returns_200(service_url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page()
            page.goto(service_url + "/", wait_until="networkidle")
            # The page introduces this service, not BentoML's generic README.
            intro = page.locator(".information-container").inner_text()
            assert "Predicts the quality of a wine" in intro
            version = page.request.get(service_url + "/readyz").headers["x-model-version"]
            assert f"Model version: {version}" in intro
            assert "docs/model.md" in intro
            assert "created with BentoML" not in intro
            operation = (
                page.locator(".opblock-post")
                .filter(has=page.locator("[data-path='/predict']"))
                .first
            )
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            body = operation.locator("textarea.body-param__text")
            assert "fixed_acidity" in body.input_value()
            with page.expect_response(lambda r: r.url.endswith("/predict")) as info:
                operation.get_by_role("button", name="Execute").click()
            assert info.value.status == 200
            result = operation.locator(".live-responses-table tbody .response-col_status").first
            result.wait_for()
            assert "200" in result.inner_text()
        finally:
            browser.close()
