"""Debian's Chromium driven by Playwright for the pacs pages (tests.diagnosis.test_browser's settings)."""
import contextlib

import pytest


@contextlib.contextmanager
def chromium_page():
    from tests.diagnosis.test_browser import CHROMIUM, CHROMIUM_ARGS, sync_api

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls stay synchronous.
    with pytest.MonkeyPatch.context() as patch, sync_api.sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            browser.close()
