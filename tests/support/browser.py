"""A reviewer in a real browser: Debian's Chromium driven by Playwright, against the stack's UI.

Browser downloads are impossible on these machines, so Playwright launches the system
``/usr/bin/chromium`` (``make browser`` installs it). Each reviewer gets a browser context of
their own (own cookie jar, so two reviewers never share a session) and every step leaves a
screenshot under ``tests/artifacts/browser/`` (gitignored) for whoever reads a failed run.

The selectors are the ones Airflow 3.3's UI exposes: the login form at ``/auth/login``
(``input[name=username]``, ``input[name=password]``, button "Sign in"), the pending gates at
``/required_actions`` (one table row per gate, the subject cell links to the gate) and one gate
at ``/dags/{dag}/runs/{run}/tasks/{task}/required_actions`` (the rendered body, the gate's
params as form fields named ``element_<param>``, buttons named after the options).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS_DIR = REPO / "tests" / "artifacts" / "browser"
# No sandbox (containers lack the namespaces), no GPU, and nothing that phones home: the
# machines have no internet beyond package registries and a stalled request slows every page.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
VIEWPORT = {"width": 1400, "height": 1000}
# Pages of a busy 2-core machine running Airflow and Spark answer slowly: be generous.
NAVIGATION_TIMEOUT_MS = 60_000

log = logging.getLogger(__name__)


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium is installed."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium) for the reviewer browser test"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless system Chromium under Playwright; closed (with its driver) on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


class ReviewerBrowser:
    """One named reviewer using the Airflow UI: log in, find a gate, read it, answer it.

    ``prefix`` starts every screenshot name so the files of one scenario sort together.
    """

    def __init__(self, browser: Any, base_url: str, user: str, prefix: str, artifacts_dir: Path = ARTIFACTS_DIR) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.prefix = prefix
        self.artifacts_dir = artifacts_dir
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(NAVIGATION_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.screenshots: list[Path] = []
        self._last_step = time.monotonic()

    def close(self) -> None:
        self.context.close()

    def screenshot(self, step: str) -> Path:
        """Keep what the reviewer sees now as ``<prefix>_<nn>_<step>.png``."""
        path = self.artifacts_dir / f"{self.prefix}_{len(self.screenshots) + 1:02d}_{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        now = time.monotonic()
        log.info("%s: step %s reached %.1f s after the previous one; screenshot %s", self.user, step, now - self._last_step, path)
        self._last_step = now
        return path

    def login(self, password: str, next_path: str = "/required_actions") -> None:
        """Sign in through the login form and land on ``next_path`` (see ``fill_login``)."""
        self.fill_login(password, next_path)
        self.submit_login()

    def fill_login(self, password: str, next_path: str = "/required_actions") -> None:
        """Open the login form and type the credentials, without submitting yet.

        The form honours ``?next=``: landing straight on the page the reviewer wants spares a
        load of the home dashboard, the slowest page of the UI on a busy machine. Split from
        ``submit_login`` so a test can load the form while the runs are still on their way.
        """
        page = self.page
        page.goto(f"{self.base_url}/auth/login?next={next_path}")
        page.fill("input[name=username]", self.user)
        page.fill("input[name=password]", password)
        self.screenshot("login")

    def submit_login(self) -> None:
        """Press Sign in; the UI sets its token cookie and leaves /auth/login."""
        page = self.page
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        if not any(c["name"] == "_token" for c in self.context.cookies()):
            raise AssertionError(f"{self.user} signed in but the UI set no _token cookie (page {page.url})")

    def open_required_actions(self, run_id: str, first_look_ms: int = 15_000) -> str:
        """Show Browse > Required Actions with the row of ``run_id``; returns the row's text.

        If the list was loaded before the gate existed (signed in early), reload it once.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        page = self.page
        if "/required_actions" not in page.url or "/dags/" in page.url:
            page.goto(f"{self.base_url}/required_actions")
        row = page.locator("tr", has_text=run_id).first
        try:
            row.wait_for(state="visible", timeout=first_look_ms)
        except PlaywrightTimeout:
            page.reload()
            row.wait_for(state="visible")
        self.screenshot("required_actions")
        return str(row.inner_text())

    def open_gate_from_list(self, run_id: str, task_id: str) -> None:
        """Follow the row's subject link to the gate page (as a reviewer would click it)."""
        page = self.page
        row = page.locator("tr", has_text=run_id).filter(has_text=task_id)
        row.locator("td[data-testid=table-cell-subject] a").first.click()
        page.wait_for_url(re.compile(rf"/runs/{re.escape(run_id)}/tasks/{re.escape(task_id)}/required_actions"))
        page.get_by_role("button", name="Approve").wait_for(state="visible")

    def open_run(self, dag_id: str, run_id: str) -> None:
        """Go to the run's page, through the breadcrumb link (no reload of the UI) when there is one."""
        page = self.page
        path = f"/dags/{dag_id}/runs/{run_id}"
        link = page.locator(f'a[href="{path}"]').first
        if link.count():
            link.click()
            page.wait_for_url(re.compile(re.escape(path) + "$"))
        else:
            page.goto(self.base_url + path)

    def goto(self, path: str) -> Any:
        """Open ``path`` of the stack (e.g. a release browser page); returns Playwright's response."""
        return self.page.goto(self.base_url + path)

    def gate_is_showing(self, text: str) -> bool:
        """Whether ``text`` is visible on the gate page (the rendered body, not hidden markup)."""
        return bool(self.page.get_by_text(text, exact=False).first.is_visible())

    def answer(self, option: str, comment: str = "") -> str:
        """Fill the gate's comment field, press ``option`` (Approve or Reject), wait until it is taken.

        Once the API accepted the answer the UI disables the option buttons and shows
        "Response received at ... from <user>"; returns that line. If the buttons stay enabled,
        the answer did not go through (e.g. 403 for a user who is not an assigned reviewer).
        """
        from playwright.sync_api import expect

        page = self.page
        if comment:
            page.locator("[name=element_comment]").fill(comment)
        self.screenshot("gate")
        page.get_by_role("button", name=option, exact=True).click()
        expect(page.get_by_role("button", name=option, exact=True)).to_be_disabled(timeout=NAVIGATION_TIMEOUT_MS)
        received = page.get_by_text(re.compile(r"Response received at .* from "))
        received.first.wait_for(state="visible")
        self.screenshot(f"after_{option.lower()}")
        return str(received.first.inner_text())


@contextmanager
def failure_screenshot(reviewer: ReviewerBrowser) -> Iterator[ReviewerBrowser]:
    """Leave a ``failure`` screenshot of what the reviewer saw if the block raises."""
    try:
        yield reviewer
    except BaseException:
        try:
            reviewer.screenshot("failure")
        except Exception:  # noqa: BLE001 - the original error matters more than the screenshot
            pass
        raise


def clear_artifacts(artifacts_dir: Path = ARTIFACTS_DIR) -> None:
    """Remove screenshots of an earlier run so the folder shows only this run's steps."""
    if artifacts_dir.is_dir():
        for old in artifacts_dir.glob("*.png"):
            old.unlink()
