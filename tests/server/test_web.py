"""The web chat page in real headless Chromium (Debian's package, driven by Playwright).

Playwright's own browser download is not used: ``executable_path=/usr/bin/chromium``
(installed by ``scripts/setup_system.sh``). A screenshot is saved under the test's tmp
dir (``artifacts/``) and, when ``LLMRELAY_ARTIFACTS`` is set, copied there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server import scripted
from tests.server.scripted import HOLD, Pause

import llmrelay

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser

# Read at import: the test-wide fixture clears LLMRELAY_* variables.
ARTIFACTS = os.environ.get("LLMRELAY_ARTIFACTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (scripts/setup_system.sh installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    target = tmp_path / "artifacts" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    if ARTIFACTS:
        Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(target, Path(ARTIFACTS) / name)
    return target


def _send(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def test_chat_stop_and_error(page: Any, server_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.goto(server_url + "/")
    expect(page.locator("#model option[value='alpha:m']")).to_have_count(1)
    page.select_option("#model", "alpha:m")
    expect(page.locator("#key-form")).to_be_hidden()  # no key on this server
    expect(page.locator("#error")).to_be_hidden()

    # 1. a streamed answer
    scripted.SCRIPTS["alpha"] = [
        "Hello",
        Pause(0.05),
        ", world",
        Pause(0.05),
        "!",
        llmrelay.FinishReason("stop"),
    ]
    _send(page, "Say hello")
    answer = page.locator(".msg.assistant").nth(0)
    expect(answer.locator(".text")).to_have_text("Hello, world!")
    expect(answer.locator(".meta")).to_contain_text("alpha")
    expect(page.locator("#send")).to_be_enabled()

    # 2. the conversation continues: the whole history goes with the next turn
    scripted.SCRIPTS["alpha"] = ["Second answer.", llmrelay.FinishReason("stop")]
    _send(page, "And again")
    expect(page.locator(".msg.assistant").nth(1).locator(".text")).to_have_text("Second answer.")
    sent = scripted.LOG["alpha"].requests[-1].messages
    assert [(m.role, m.content) for m in sent] == [
        ("user", "Say hello"),
        ("assistant", "Hello, world!"),
        ("user", "And again"),
    ]

    # 3. stop a long answer: the provider's stream is closed
    scripted.SCRIPTS["alpha"] = ["A very long answer begins", HOLD]
    _send(page, "Tell me a long story")
    long_answer = page.locator(".msg.assistant").nth(2)
    expect(long_answer.locator(".text")).to_have_text("A very long answer begins")
    expect(page.locator("#stop")).to_be_enabled()
    page.click("#stop")
    expect(long_answer.locator(".meta")).to_have_text("stopped")
    assert scripted.LOG["alpha"].wait_closed(5), "stop did not close the upstream stream"
    shot = _screenshot(page, tmp_path, "web-chat.png")
    assert shot.stat().st_size > 1000

    # 4. an error is shown, and the prompt is given back
    scripted.SCRIPTS["alpha"] = [
        llmrelay.ProviderUnavailable("the service is overloaded", provider="alpha", model="m")
    ]
    _send(page, "Fail please")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("overloaded")
    expect(page.locator("#prompt")).to_have_value("Fail please")
    _screenshot(page, tmp_path, "web-chat-error.png")


def test_error_after_text_is_shown(page: Any, server_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(server_url + "/")
    expect(page.locator("#model option[value='beta:m']")).to_have_count(1)
    page.select_option("#model", "beta:m")
    scripted.SCRIPTS["beta"] = ["Half an ans", llmrelay.TransportError("reset", provider="beta")]
    _send(page, "hi")
    expect(page.locator(".msg.assistant .text")).to_have_text("Half an ans")
    expect(page.locator("#error")).to_contain_text("reset")
    expect(page.locator(".msg.assistant .meta")).to_have_text("interrupted")


def test_the_page_asks_for_the_server_key(page: Any, make_server: Any) -> None:
    from playwright.sync_api import expect

    url = make_server(api_key="page-key-1")
    page.goto(url + "/")
    expect(page.locator("#key-form")).to_be_visible()
    page.fill("#key", "page-key-1")
    page.click("#key-form button")
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#model option[value='alpha:m']")).to_have_count(1)
    page.select_option("#model", "alpha:m")
    _send(page, "hi")
    expect(page.locator(".msg.assistant .text")).to_have_text("Hello, world!")
    assert page.evaluate("sessionStorage.getItem('llmrelay.serverKey')") == "page-key-1"
