"""Browser-test fixtures: Debian's headless Chromium driven by Playwright, and the whole stack on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen: the README's pictures show what a person sees
LAPTOP_VIEWPORTS = [{"width": 1280, "height": 800}, {"width": 1440, "height": 900}]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (apt-get install chromium); browser tests need it")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """Package scope: Playwright's sync API keeps an asyncio loop running on the main thread while it is open,
    which would break any later test that calls asyncio.run(); it closes as soon as the browser tests are done."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go as test artifacts (CI can upload it); also copied to docs/screenshots for the README."""
    configured = os.environ.get("HEARTH_TEST_ARTIFACTS")
    folder = Path(configured) / "ui" if configured else tmp_path_factory.mktemp("ui-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def shoot(artifacts_dir: Path):
    """page -> name -> screenshot saved as a test artifact.

    With HEARTH_UPDATE_SCREENSHOTS=1 it is also copied to docs/screenshots/<name>.png (the README's pictures), so an
    ordinary test run never leaves the working tree modified.
    """
    update_docs = os.environ.get("HEARTH_UPDATE_SCREENSHOTS") == "1"

    def take(page, name: str, full_page: bool = False) -> Path:
        path = artifacts_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if update_docs:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
        return path

    return take


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item so fixtures can tell a failed test (and screenshot it)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
