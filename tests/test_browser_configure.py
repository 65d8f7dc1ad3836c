"""The configure page in a real browser: headless Chromium (Debian's package) driven by
Playwright opens the host emulator's "Manage apps" page, which frames ``/configure`` from the
demo app on a live server, exactly as a product does.

Skipped where Playwright or /usr/bin/chromium is missing, never under ``CI=true``. Every test
saves screenshots under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from connect_settings import store
from connect_settings.auth import mint_session_token
from connect_settings.jwt.tokens import read_unverified
from connect_settings.models import ConfigurationChange

CHROMIUM = os.environ.get("CONNECT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.django_db(transaction=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests are mandatory under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    # Playwright's sync API keeps an event loop running in this thread for as long as the
    # browser lives; the ORM calls of the tests (and pytest-django's flush) are still plain
    # synchronous code, so Django's async-safety check must stand down meanwhile.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def site(browser: Any, connect_live_install: Any) -> Iterator[Any]:
    """The demo app installed into a Jira emulator; ``site.open()`` opens a tab on its
    "Manage apps" page with the configure page framed."""
    emulator, tenant = connect_live_install("jira")
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    requested: list[tuple[str, str]] = []
    context.on("request", lambda request: requested.append((request.method, request.url)))

    class Site:
        def __init__(self) -> None:
            self.emulator = emulator
            self.tenant = tenant
            self.requested = requested

        def saves(self) -> int:
            """POSTs the browser has sent to /configure so far."""
            return sum(1 for m, u in requested if m == "POST" and urlsplit(u).path == "/configure")

        def open(self) -> tuple[Any, Any]:
            from playwright.sync_api import expect

            page = context.new_page()
            page.goto(emulator.url + "/")
            frame = page.frame_locator("#ap-frame")
            expect(frame.locator("#cs-save")).to_be_enabled()
            return page, frame

    try:
        yield Site()
    finally:
        context.close()


def _shot(page: Any, request: pytest.FixtureRequest, step: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{request.node.name}-{step}")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _stored(site: Any) -> dict[str, Any]:
    return store.get("appSettings", site.tenant.client_key) or {}


def test_fill_save_and_reload_shows_the_values(site: Any, request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect

    page, frame = site.open()
    _shot(page, request, "1-loaded")
    # Framed by the product, the page loaded the host's all.js (here the emulator's copy).
    assert frame.locator("html").evaluate("() => !!(window.AP && window.AP.__emulated)")
    frame.get_by_label("Team name").fill("Platform")
    frame.get_by_label("Default priority").select_option("high")
    frame.get_by_label("Notify the team when an issue is escalated").uncheck()
    frame.get_by_label("Results per page").fill("50")
    frame.get_by_label("Slack").check()
    frame.get_by_label("Projects").fill("OPS\nSUP")
    frame.get_by_label("Escalation service API token").fill("browser-secret-123")
    frame.get_by_role("button", name="Save").click()
    expect(frame.locator("#cs-status")).to_have_text("Saved.")
    _shot(page, request, "2-saved")
    stored = _stored(site)
    assert stored == {
        "team_name": "Platform",
        "default_priority": "high",
        "notify": False,
        "results_per_page": 50,
        "channels": ["email", "slack"],
        "project_keys": ["OPS", "SUP"],
        "api_token": "browser-secret-123",
    }
    # The secret box is emptied and says a value is set; the history lists the save.
    expect(frame.get_by_label("Escalation service API token")).to_have_value("")
    expect(frame.locator("#id_api_token_state")).to_contain_text("A value is set.")
    expect(frame.locator("#cs-history-list li").first).to_contain_text("version 1")

    page.reload()  # a new page load, signed afresh by the host
    frame = page.frame_locator("#ap-frame")
    expect(frame.get_by_label("Team name")).to_have_value("Platform")
    expect(frame.get_by_label("Default priority")).to_have_value("high")
    expect(frame.get_by_label("Notify the team when an issue is escalated")).not_to_be_checked()
    expect(frame.get_by_label("Results per page")).to_have_value("50")
    expect(frame.get_by_label("Slack")).to_be_checked()
    expect(frame.get_by_label("Projects")).to_have_value("OPS\nSUP")
    expect(frame.get_by_label("Escalation service API token")).to_have_value("")
    expect(frame.locator("#cs-history-list")).to_contain_text("set (secret)")
    assert "browser-secret-123" not in frame.locator("html").inner_html()
    _shot(page, request, "3-reloaded")
    # Nothing was fetched from anywhere but the app and the host (no external assets).
    hosts = {urlsplit(url).hostname for _, url in site.requested if url.startswith("http")}
    assert hosts <= {"127.0.0.1", "localhost"}, hosts


def test_invalid_number_shows_its_message_beside_the_field(
    site: Any, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import expect

    page, frame = site.open()
    # A token the page has held for a while (still valid): every answer, a 400 too, renews it.
    meta = frame.locator('meta[name="token"]')
    aged = mint_session_token(site.tenant, site.emulator.account_id, now=time.time() - 800)
    meta.evaluate("(el, t) => el.setAttribute('content', t)", aged)
    frame.get_by_label("Results per page").fill("500")
    frame.get_by_role("button", name="Save").click()
    error = frame.locator("#id_results_per_page_error")
    expect(error).to_be_visible()
    expect(error).to_have_text("Ensure this value is less than or equal to 100.")
    number = frame.get_by_label("Results per page")
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(number).to_be_focused()
    expect(frame.locator("#cs-status")).to_contain_text("Not saved")
    _shot(page, request, "error")
    assert _stored(site) == {} and not ConfigurationChange.objects.exists()
    renewed = meta.get_attribute("content")
    assert renewed != aged and read_unverified(renewed)[1]["iat"] > time.time() - 60
    # Corrected, the error goes away and the save goes through.
    number.fill("100")
    frame.get_by_role("button", name="Save").click()
    expect(frame.locator("#cs-status")).to_have_text("Saved.")
    expect(error).to_be_hidden()
    assert _stored(site)["results_per_page"] == 100


def test_two_tabs_with_the_same_version_the_second_sees_the_conflict(
    site: Any, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import expect

    _first, first_frame = site.open()
    second, second_frame = site.open()
    first_frame.get_by_label("Team name").fill("First tab")
    first_frame.get_by_role("button", name="Save").click()
    expect(first_frame.locator("#cs-status")).to_have_text("Saved.")

    second_frame.get_by_label("Team name").fill("Second tab")
    second_frame.get_by_role("button", name="Save").click()
    conflict = second_frame.locator("#cs-conflict")
    expect(conflict).to_be_visible()
    expect(conflict).to_contain_text("Someone else saved these settings")
    expect(conflict).to_contain_text("Team name: Support \u2192 First tab")
    expect(conflict).to_be_focused()
    _shot(second, request, "conflict")
    assert _stored(site)["team_name"] == "First tab"
    assert ConfigurationChange.objects.count() == 1

    second_frame.get_by_role("button", name="Load the latest settings").click()
    expect(conflict).to_be_hidden()
    expect(second_frame.get_by_label("Team name")).to_have_value("First tab")
    second_frame.get_by_label("Team name").fill("Second tab")
    second_frame.get_by_role("button", name="Save").click()
    expect(second_frame.locator("#cs-status")).to_have_text("Saved.")
    assert _stored(site)["team_name"] == "Second tab"
    assert list(
        ConfigurationChange.objects.order_by("version").values_list("version", flat=True)
    ) == [1, 2]


def test_expired_session_token_shows_the_expiry_message(
    site: Any, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import expect

    page, frame = site.open()
    # What the page holds after sitting open past SESSION_TOKEN_TTL.
    expired = mint_session_token(site.tenant, site.emulator.account_id, now=time.time() - 3600)
    frame.locator('meta[name="token"]').evaluate(
        "(el, t) => el.setAttribute('content', t)", expired
    )
    frame.get_by_label("Team name").fill("Too late")
    frame.get_by_role("button", name="Save").click()
    banner = frame.locator("#cs-expired")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your session has expired.")
    expect(banner).to_be_focused()
    _shot(page, request, "expired")
    assert _stored(site) == {}
    # "Reload the page" asks the host (AP.navigator.reload) for a freshly signed page.
    frame.get_by_role("button", name="Reload the page").click()
    frame = page.frame_locator("#ap-frame")
    expect(frame.locator("#cs-expired")).to_be_hidden()
    frame.get_by_label("Team name").fill("In time")
    frame.get_by_role("button", name="Save").click()
    expect(frame.locator("#cs-status")).to_have_text("Saved.")
    assert _stored(site)["team_name"] == "In time"


def test_keyboard_only_save_and_a_double_click_saves_once(
    site: Any, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import expect

    page, frame = site.open()
    team = frame.get_by_label("Team name")
    team.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("Keyboard")
    page.keyboard.press("Tab")  # to the priority select
    expect(frame.get_by_label("Default priority")).to_be_focused()
    page.keyboard.press("Tab")  # to the checkbox
    expect(frame.get_by_label("Notify the team when an issue is escalated")).to_be_focused()
    page.keyboard.press("Space")
    expect(frame.get_by_label("Notify the team when an issue is escalated")).not_to_be_checked()
    frame.get_by_role("button", name="Save").focus()
    page.keyboard.press("Enter")
    expect(frame.locator("#cs-status")).to_have_text("Saved.")
    assert _stored(site)["team_name"] == "Keyboard" and _stored(site)["notify"] is False

    assert site.saves() == 1
    frame.get_by_label("Results per page").fill("77")
    frame.get_by_role("button", name="Save").dblclick()
    expect(frame.locator("#cs-status")).to_have_text("Saved.")
    expect(frame.get_by_role("button", name="Save")).to_be_enabled()
    _shot(page, request, "double-click")
    # The double click sent one save: its second click either found the button disabled or,
    # when the first save had already answered, was ignored as part of the same double click.
    assert site.saves() == 2

    # The case a fast server makes common, played step by step: the second click of a double
    # click arrives after the first save has answered and the button is enabled again.
    frame.get_by_label("Results per page").fill("78")
    box = frame.get_by_role("button", name="Save").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down(click_count=1)
    page.mouse.up(click_count=1)
    expect(frame.locator("#cs-status")).to_have_text("Saved.")
    expect(frame.get_by_role("button", name="Save")).to_be_enabled()
    page.mouse.down(click_count=2)
    page.mouse.up(click_count=2)
    # A save would have set the form busy and the status to "Saving…" synchronously, in the
    # click's own handler, before mouse.up returned.
    expect(frame.locator("#cs-configure")).to_have_attribute("aria-busy", "false")
    expect(frame.locator("#cs-status")).to_have_text("Saved.")
    assert site.saves() == 3
    expect(frame.locator("#cs-form-errors")).to_be_hidden()
    assert list(
        ConfigurationChange.objects.order_by("version").values_list("version", flat=True)
    ) == [1, 2, 3]
    expect(frame.locator("#cs-conflict")).to_be_hidden()
