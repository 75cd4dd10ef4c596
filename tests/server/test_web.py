"""The web chat page in real headless Chromium (Debian's package, driven by Playwright).

Playwright's own browser download is not used: ``executable_path=/usr/bin/chromium``
(installed by ``scripts/setup_system.sh``). One browser per module, a fresh context
(empty storage) per test. Every page of every test must load nothing from outside the
server under test, raise no uncaught error and trip no Content-Security-Policy rule
(checked when its context closes).

Screenshots are saved under the test's tmp dir (``artifacts/``; the path is printed)
and, when ``LLMRELAY_ARTIFACTS`` is set, copied there.
"""

from __future__ import annotations

import base64
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.server import scripted
from tests.server.scripted import HOLD, Gate

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

# Records what the page must never do: load from elsewhere, trip the CSP.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""

OpenPage = Callable[..., Any]


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
def open_page(browser: Any) -> Iterator[OpenPage]:
    """``open_page(url, width=1000, height=700, dark=False)`` -> a page at ``url + "/"``."""
    contexts: list[tuple[Any, list[str], list[str], list[Any]]] = []

    def open_(url: str, width: int = 1000, height: int = 700, dark: bool = False) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme="dark" if dark else "light",
        )
        outside: list[str] = []
        errors: list[str] = []

        def route(route: Any) -> None:
            if route.request.url.startswith("http://127.0.0.1:"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", route)
        context.add_init_script(WATCH)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        pages = [page]
        contexts.append((context, outside, errors, pages))
        page.goto(url + "/")
        return page

    yield open_
    for context, outside, errors, pages in contexts:
        try:
            csp = [
                v for page in pages if not page.is_closed() for v in page.evaluate("window.__csp")
            ]
        finally:
            context.close()
        assert not outside, f"the page asked for outside resources: {outside}"
        assert not errors, f"uncaught errors in the page: {errors}"
        assert not csp, f"Content-Security-Policy violations: {csp}"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    target = tmp_path / "artifacts" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), animations="disabled")
    if ARTIFACTS:
        Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(target, Path(ARTIFACTS) / name)
    print(f"screenshot: {target}")
    assert target.stat().st_size > 1000
    return target


def _ready(page: Any, model: str = "alpha:m") -> None:
    _expect()(page.locator(f"#model option[value='{model}']")).to_have_count(1)
    page.select_option("#model", model)


def _send(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def _answer(page: Any, n: int) -> Any:
    return page.locator(".msg.assistant").nth(n)


def _sent(provider: str, n: int = -1) -> list[tuple[str, str]]:
    return [(m.role, str(m.content)) for m in scripted.LOG[provider].requests[n].messages]


MARKDOWN = [
    "# Plan\n\n",
    "First paragraph with a [link](https://example.org/docs).\n\n",
    "Second para",
    Gate(),  # 3: the test marks the settled blocks here
    "graph, then a list:\n\n- one\n- two\n\n",
    "```python\nprint('hi')\n",
    "```\n\n",
    "| name | value |\n|---|---|\n| a | 1 |\n| b | 2 |\n",
    Gate(),  # 8: and checks they were not rendered again
    llmrelay.FinishReason("stop"),
]


def test_markdown_renders_as_it_streams(open_page: OpenPage, server_url: str) -> None:
    expect = _expect()
    page = open_page(server_url)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _ready(page)

    # a first exchange, whose rendered answer must not be touched by the next one
    scripted.SCRIPTS["alpha"] = ["Plain *first* answer.", llmrelay.FinishReason("stop")]
    _send(page, "first")
    first = _answer(page, 0)
    expect(first.locator(".content em")).to_have_text("first")
    # the provider reports no usage: the server's count, shown as an estimate
    expect(first.locator(".meta .who")).to_have_text("Alpha · m · ≈6 tokens")

    steps = list(MARKDOWN)
    scripted.SCRIPTS["alpha"] = steps
    _send(page, "Show me Markdown")
    answer = _answer(page, 1)
    expect(answer.locator(".content")).to_contain_text("Second para")
    expect(answer.locator(".settled h1")).to_have_text("Plan")  # settled while streaming
    page.evaluate(
        """() => {
        document.querySelector('.msg.assistant .content').__mark = 'first';
        document.querySelectorAll('.msg.assistant')[1].querySelector('.settled h1').__mark = 'h1';
        }"""
    )
    steps[3].open()
    expect(answer.locator("table")).to_be_visible()
    marks = page.evaluate(
        """() => [document.querySelector('.msg.assistant .content').__mark,
                  document.querySelectorAll('.msg.assistant')[1].querySelector('h1').__mark]"""
    )
    assert marks == ["first", "h1"], "settled Markdown was rendered again for a later delta"
    steps[8].open()
    expect(answer).not_to_have_class("msg assistant streaming")
    expect(page.locator("#send")).to_be_enabled()

    content = answer.locator(".content")
    expect(content.locator("h1")).to_have_text("Plan")
    expect(content.locator("ul > li")).to_have_text(["one", "two"])
    expect(content.locator("pre code")).to_have_text("print('hi')\n")
    expect(content.locator(".code-bar")).to_contain_text("python")
    expect(content.locator("table th")).to_have_text(["name", "value"])
    expect(content.locator("table td")).to_have_text(["a", "1", "b", "2"])
    link = content.locator("a", has_text="link")
    expect(link).to_have_attribute("href", "https://example.org/docs")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")

    content.locator("button.copy").click()
    expect(content.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')\n"
    # the conversation went to the provider whole, as plain text
    assert _sent("alpha") == [
        ("user", "first"),
        ("assistant", "Plain *first* answer."),
        ("user", "Show me Markdown"),
    ]


HOSTILE = [
    "<script>window.__pwned = 'script'</script>\n\n",
    '<img src="x" onerror="window.__pwned = \'img\'">\n\n',
    "[click me](javascript:window.__pwned='link')\n\n",
    "<a href=\"javascript:window.__pwned='a'\">raw link</a> and ",
    "[encoded](jav&#x09;ascript:window.__pwned='entity')\n\n",
    "<!-",
    Gate(),  # 6: a comment begun in one delta ...
    "- hidden --><img src=x onerror=\"window.__pwned='comment'\">\n\n",
    "<img src=x on",
    "error=\"window.__pwned='split'\">\n\n",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    "<iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\"></iframe>\n\n",
    "![pic](x\" onerror=\"window.__pwned='md-img')\n\n",
    "![tracker](https://tracker.example/pixel.png)\n\n",
    llmrelay.FinishReason("stop"),
]

INERT = """() => {
  const log = document.getElementById('log');
  const bad = [];
  for (const el of log.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith('on')) bad.push(el.tagName + ' ' + attr.name);
      if (/^\\s*(javascript|vbscript|data:text)/i.test(attr.value)) bad.push(el.tagName + ' ' + attr.value);
    }
  }
  for (const el of log.querySelectorAll('script, iframe, svg, object, embed, img, style')) bad.push(el.tagName);
  return {pwned: window.__pwned || null, bad};
}"""


def test_a_hostile_answer_runs_nothing(open_page: OpenPage, server_url: str) -> None:
    expect = _expect()
    page = open_page(server_url)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _ready(page)
    steps = list(HOSTILE)
    scripted.SCRIPTS["alpha"] = steps
    _send(page, "be evil")
    answer = _answer(page, 0)
    expect(answer.locator(".content")).to_contain_text("<!-")
    assert page.evaluate(INERT) == {"pwned": None, "bad": []}  # mid-comment
    steps[6].open()
    expect(page.locator("#send")).to_be_enabled()
    assert page.evaluate(INERT) == {"pwned": None, "bad": []}
    content = answer.locator(".content")
    # raw HTML is shown as the text the model wrote, never as markup
    expect(content).to_contain_text("<script>window.__pwned = 'script'</script>")
    expect(content).to_contain_text("<!-- hidden -->")
    # the javascript: links are inert (no href), and clicking them runs nothing
    for name in ("click me", "encoded"):
        link = content.locator("a", has_text=name)
        if link.count():
            assert link.get_attribute("href") is None
            link.click()
    page.wait_for_timeout(100)
    assert page.evaluate(INERT) == {"pwned": None, "bad": []}
    # a remote image is not fetched (no tracking, works offline): a link to it instead
    tracker = content.locator("a", has_text="tracker")
    expect(tracker).to_have_attribute("href", "https://tracker.example/pixel.png")
    # rendered again from storage after a reload: still inert
    page.reload()
    expect(_answer(page, 0).locator(".content")).to_contain_text("<!-- hidden -->")
    page.wait_for_timeout(100)
    assert page.evaluate(INERT) == {"pwned": None, "bad": []}
    assert dialogs == []


def test_conversations_are_kept_switched_renamed_and_deleted(
    open_page: OpenPage, server_url: str
) -> None:
    expect = _expect()
    page = open_page(server_url)
    _ready(page)
    page.click("#settings-toggle")
    page.fill("#system", "Answer in French.")
    page.fill("#temperature", "0.3")
    page.fill("#max-tokens", "64")
    page.click("#settings-toggle")
    scripted.SCRIPTS["alpha"] = ["Bonjour !", llmrelay.FinishReason("stop")]
    _send(page, "Say hello")
    expect(_answer(page, 0).locator(".content")).to_have_text("Bonjour !")
    sent = scripted.LOG["alpha"].requests[-1]
    assert _sent("alpha") == [("system", "Answer in French."), ("user", "Say hello")]
    assert (sent.temperature, sent.max_tokens) == (0.3, 64)

    page.click("#new-chat")
    expect(page.locator(".msg")).to_have_count(0)
    page.click("#settings-toggle")
    expect(page.locator("#system")).to_have_value("")  # per conversation
    page.click("#settings-toggle")
    page.select_option("#model", "beta:m")
    scripted.SCRIPTS["beta"] = ["Second chat.", llmrelay.FinishReason("stop")]
    _send(page, "Another topic")
    expect(_answer(page, 0).locator(".content")).to_have_text("Second chat.")
    assert _sent("beta") == [("user", "Another topic")]

    # a reload restores the open conversation and lists both, newest first
    page.reload()
    expect(page.locator("#chats li .open")).to_have_text(["Another topic", "Say hello"])
    expect(page.locator(".msg.user .content")).to_have_text(["Another topic"])
    expect(_answer(page, 0).locator(".content")).to_have_text("Second chat.")
    expect(page.locator("#model")).to_have_value("beta:m")

    # switch: the first comes back with its system prompt, parameters and model
    page.locator("#chats li .open", has_text="Say hello").click()
    expect(_answer(page, 0).locator(".content")).to_have_text("Bonjour !")
    expect(page.locator("#system")).to_have_value("Answer in French.")
    expect(page.locator("#temperature")).to_have_value("0.3")
    expect(page.locator("#model")).to_have_value("alpha:m")
    scripted.SCRIPTS["alpha"] = ["Encore.", llmrelay.FinishReason("stop")]
    _send(page, "Again")
    expect(_answer(page, 1).locator(".content")).to_have_text("Encore.")
    assert _sent("alpha") == [
        ("system", "Answer in French."),
        ("user", "Say hello"),
        ("assistant", "Bonjour !"),
        ("user", "Again"),
    ]

    # rename (kept over a reload) and delete
    page.locator("#chats li", has_text="Say hello").locator(".rename").click()
    page.fill("#chats .rename-input", "French greetings")
    page.keyboard.press("Enter")
    expect(page.locator("#chats li .open").first).to_have_text("French greetings")
    page.reload()
    expect(page.locator("#chats li .open")).to_have_text(["French greetings", "Another topic"])
    expect(page.locator(".msg")).to_have_count(4)
    # a reload while an answer is coming keeps what came, marked; Retry answers again
    scripted.SCRIPTS["alpha"] = ["Half of it", HOLD]
    _send(page, "Long one")
    expect(_answer(page, 2).locator(".content")).to_have_text("Half of it")
    page.reload()
    assert scripted.LOG["alpha"].wait_closed(5), "leaving did not close the upstream stream"
    expect(_answer(page, 2).locator(".content")).to_have_text("Half of it")
    expect(_answer(page, 2).locator(".meta .who")).to_have_text("Alpha · m · interrupted")
    scripted.SCRIPTS["alpha"] = ["All of it.", llmrelay.FinishReason("stop")]
    _answer(page, 2).locator(".regenerate").click()
    expect(_answer(page, 2).locator(".content")).to_have_text("All of it.")
    expect(page.locator(".msg")).to_have_count(6)
    page.once("dialog", lambda d: d.accept())
    page.locator("#chats li", has_text="Another topic").locator(".delete").click()
    expect(page.locator("#chats li .open")).to_have_text(["French greetings"])
    page.reload()
    expect(page.locator("#chats li .open")).to_have_text(["French greetings"])


def test_stop_retry_errors_and_fallback(open_page: OpenPage, server_url: str) -> None:
    expect = _expect()
    page = open_page(server_url)
    _ready(page)

    # Stop: the upstream stream is closed, what came is kept; Retry answers again
    scripted.SCRIPTS["alpha"] = ["A very long answer begins", HOLD]
    _send(page, "Tell me a long story")
    expect(_answer(page, 0).locator(".content")).to_have_text("A very long answer begins")
    page.click("#stop")
    expect(_answer(page, 0).locator(".meta .who")).to_have_text("Alpha · m · stopped")
    assert scripted.LOG["alpha"].wait_closed(5), "stop did not close the upstream stream"
    scripted.SCRIPTS["alpha"] = ["The end.", llmrelay.FinishReason("stop")]
    _answer(page, 0).locator(".regenerate").click()
    expect(_answer(page, 0).locator(".content")).to_have_text("The end.")
    expect(page.locator(".msg.assistant")).to_have_count(1)
    assert _sent("alpha") == [("user", "Tell me a long story")]

    # an error before any text: said with provider and model, the prompt is given back
    scripted.SCRIPTS["alpha"] = [
        llmrelay.ProviderUnavailable("the service is overloaded", provider="alpha", model="m")
    ]
    _send(page, "Fail please")
    expect(page.locator("#error-text")).to_have_text("alpha (m): the service is overloaded")
    expect(page.locator("#prompt")).to_have_value("Fail please")
    expect(page.locator(".msg")).to_have_count(2)
    scripted.SCRIPTS["alpha"] = ["Recovered.", llmrelay.FinishReason("stop")]
    page.click("#retry")
    expect(_answer(page, 1).locator(".content")).to_have_text("Recovered.")
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#prompt")).to_have_value("")

    # an error after some text: the text stays, marked, and Retry replaces it
    scripted.SCRIPTS["alpha"] = [
        "Half an ans",
        llmrelay.TransportError("connection reset", provider="alpha", model="m"),
    ]
    _send(page, "Go on")
    expect(_answer(page, 2).locator(".content")).to_have_text("Half an ans")
    expect(_answer(page, 2).locator(".meta .who")).to_have_text("Alpha · m · interrupted")
    expect(_answer(page, 2).locator(".msg-error")).to_contain_text("connection reset")
    expect(page.locator("#error-text")).to_contain_text("alpha (m): connection reset")
    scripted.SCRIPTS["alpha"] = ["Whole answer.", llmrelay.FinishReason("stop")]
    page.click("#retry")
    expect(_answer(page, 2).locator(".content")).to_have_text("Whole answer.")
    assert _sent("alpha")[-1] == ("user", "Go on")
    assert ("assistant", "Half an ans") not in _sent("alpha")

    # fallback: the answer names who answered and lists the attempts
    page.click("#new-chat")
    page.select_option("#model", "chain")
    scripted.SCRIPTS["alpha"] = [
        llmrelay.ProviderUnavailable("alpha is down", provider="alpha", model="m")
    ]
    scripted.SCRIPTS["beta"] = ["From beta.", llmrelay.FinishReason("stop")]
    _send(page, "Anyone?")
    answer = _answer(page, 0)
    expect(answer.locator(".content")).to_have_text("From beta.")
    expect(answer.locator(".meta .who")).to_have_text("Beta · m · ≈3 tokens")
    answer.locator(".attempts summary").click()
    expect(answer.locator(".attempts li")).to_have_text(
        [
            "alpha:m — failed: ProviderUnavailable — alpha (m): alpha is down",
            "beta:m — answered",
        ]
    )

    # every candidate failing: each attempt is listed with the error
    scripted.SCRIPTS["beta"] = [
        llmrelay.ProviderUnavailable("beta is down too", provider="beta", model="m")
    ]
    _send(page, "Nobody?")
    expect(page.locator("#error-attempts li")).to_have_count(2)
    expect(page.locator("#error-attempts")).to_contain_text("beta is down too")


def test_keyboard_only(open_page: OpenPage, server_url: str) -> None:
    expect = _expect()
    page = open_page(server_url)
    _ready(page)
    page.locator("body").focus()
    seen = []
    for _ in range(15):  # Tab reaches the prompt, each stop with a visible focus ring
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return [el.id || el.tagName, style.outlineStyle, parseFloat(style.outlineWidth)];
            }"""
        )
        seen.append(focused[0])
        assert focused[1] != "none", f"no visible focus on {focused[0]}"
        assert focused[2] >= 2, f"no visible focus on {focused[0]}"
        if focused[0] == "prompt":
            break
    assert seen[-1] == "prompt", seen
    assert {"model", "settings-toggle", "new-chat"} <= set(seen)
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(page.locator("#prompt")).to_have_value("line one\nline two")
    scripted.SCRIPTS["alpha"] = ["Streaming on", HOLD]
    page.keyboard.press("Enter")
    expect(_answer(page, 0).locator(".content")).to_have_text("Streaming on")
    assert _sent("alpha") == [("user", "line one\nline two")]
    page.keyboard.press("Escape")
    expect(_answer(page, 0).locator(".meta .who")).to_have_text("Alpha · m · stopped")
    assert scripted.LOG["alpha"].wait_closed(5)
    # the settings open and close from the keyboard
    page.focus("#settings-toggle")
    page.keyboard.press("Enter")
    expect(page.locator("#system")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#system")).to_be_hidden()
    assert page.evaluate("document.activeElement.id") == "settings-toggle"
    # labels for screen readers
    for control in ("model", "prompt", "system", "temperature", "max-tokens", "mode"):
        assert page.locator(f"label[for='{control}']").count() == 1, control


FITS = """([w, h]) => {
  // w, h: the device's size (a phone's browser zooms out to show a page wider than it)
  const box = (id) => { const r = document.getElementById(id).getBoundingClientRect();
                        return r.left >= 0 && r.right <= w + 0.5 && r.top >= 0 && r.bottom <= h + 0.5; };
  return {width: window.innerWidth === w && document.documentElement.scrollWidth <= w
                 && document.body.scrollWidth <= w,
          newChat: box('new-chat'), model: box('model'), prompt: box('prompt'), send: box('send')};
}"""
ALL_FIT = {"width": True, "newChat": True, "model": True, "prompt": True, "send": True}

WIDE = [
    "Here is a wide table and a long line of code:\n\n",
    "| column one | column two | column three | column four | column five |\n",
    "|---|---|---|---|---|\n| some text | more text | even more text | and more | last |\n\n",
    "```\n" + "x = " + "'averyveryverylongstring' + " * 8 + "''\n```\n\n",
    "A link: https://example.org/" + "a" * 80 + "\n",
    llmrelay.FinishReason("stop"),
]


def test_phones_desktop_and_dark_mode(open_page: OpenPage, server_url: str, tmp_path: Path) -> None:
    expect = _expect()
    # desktop: a fallback answer with Markdown, two conversations in the list
    page = open_page(server_url, width=1280, height=800)
    _ready(page)
    scripted.SCRIPTS["alpha"] = ["Hello! How can I help?", llmrelay.FinishReason("stop")]
    _send(page, "Hi there")
    expect(_answer(page, 0).locator(".content")).to_have_text("Hello! How can I help?")
    page.click("#new-chat")
    page.select_option("#model", "chain")
    scripted.SCRIPTS["alpha"] = [llmrelay.ProviderUnavailable("overloaded", provider="alpha")]
    scripted.SCRIPTS["beta"] = [*WIDE[:-1], "\n\n1. first\n2. second\n", *WIDE[-1:]]
    _send(page, "Show me a table and some code")
    expect(_answer(page, 0).locator("table")).to_be_visible()
    expect(page.locator("#send")).to_be_enabled()
    assert page.evaluate(FITS, [1280, 800]) == ALL_FIT
    _screenshot(page, tmp_path, "web-desktop.png")

    # phones: the same conversation (this browser's storage) at 360-430 px
    state = page.context.storage_state()
    for width in (360, 390, 430):
        phone = page.context.browser.new_context(
            viewport={"width": width, "height": 800},
            storage_state=state,
            is_mobile=True,
            has_touch=True,
        )
        try:
            p = phone.new_page()
            p.goto(server_url + "/")
            expect(p.locator("table")).to_be_visible()
            assert p.evaluate(FITS, [width, 800]) == ALL_FIT, width
            if width == 390:
                _screenshot(p, tmp_path, "web-phone-390.png")
                p.click("#open-sidebar")
                expect(p.locator("#chats li")).to_have_count(2)
                expect(p.locator("#chats li .open").first).to_be_in_viewport()
                _screenshot(p, tmp_path, "web-phone-390-conversations.png")
                p.keyboard.press("Escape")
                expect(p.locator("#sidebar")).not_to_be_in_viewport()
                # the on-screen keyboard takes half the screen: the input stays visible
                p.set_viewport_size({"width": 390, "height": 420})
                p.focus("#prompt")
                expect(p.locator("#prompt")).to_be_in_viewport()
                assert p.evaluate(FITS, [390, 420]) == ALL_FIT
        finally:
            phone.close()

    # dark mode follows the system setting
    dark = open_page(server_url, width=390, height=800, dark=True)
    _ready(dark)
    colors = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert colors == "rgb(21, 23, 27)", colors
    scripted.SCRIPTS["alpha"] = WIDE
    _send(dark, "Dark?")
    expect(dark.locator("table")).to_be_visible()
    assert dark.evaluate(FITS, [390, 800]) == ALL_FIT
    _screenshot(dark, tmp_path, "web-phone-390-dark.png")


def test_model_picker_and_image_mode(open_page: OpenPage, server_url: str) -> None:
    expect = _expect()
    page = open_page(server_url)
    _ready(page)
    groups = dict(
        page.eval_on_selector_all(
            "#model optgroup",
            "gs => gs.map(g => [g.label, [...g.children].map(o => [o.value, o.disabled])])",
        )
    )
    assert ["chain", False] in groups["Aliases"]
    assert groups["Alpha (alpha)"] == [["alpha:m", False], ["alpha:long", False]]
    assert groups["Painter (painter)"] == [["painter:m", False]]  # painter:canvas paints
    # a provider that needs a key this server lacks is marked, its models not selectable
    (locked,) = [label for label in groups if label.startswith("Replicate")]
    assert locked == "Replicate — needs a key on the server (REPLICATE_API_TOKEN)"
    assert groups[locked]
    assert all(disabled for _, disabled in groups[locked])
    chat_models = {value for options in groups.values() for value, _ in options}
    assert "huggingface:Qwen/Qwen2-72B-Instruct" in chat_models
    assert not {"painter:canvas", "huggingface:black-forest-labs/FLUX.1-schnell"} & chat_models
    assert not any("flux" in model for model in chat_models)
    # image mode: only image models; the generated image is shown and kept
    page.select_option("#mode", "image")
    expect(page.locator("#model option[value='alpha:m']")).to_have_count(0)
    expect(
        page.locator("#model option[value='huggingface:black-forest-labs/FLUX.1-schnell']")
    ).to_have_count(1)
    page.select_option("#model", "painter:canvas")
    _send(page, "a small dot")
    image = _answer(page, 0).locator("img.generated")
    expect(image).to_be_visible()
    assert image.get_attribute("src").startswith("data:image/png;base64,iVBOR")
    page.reload()
    expect(_answer(page, 0).locator("img.generated")).to_be_visible()
    expect(page.locator("#mode")).to_have_value("image")
    # switching a conversation that has messages back to chat starts a new one
    page.select_option("#mode", "chat")
    expect(page.locator(".msg")).to_have_count(0)
    expect(page.locator("#model option[value='painter:canvas']")).to_have_count(0)


PASTE_IMAGE = """async (b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
  document.getElementById('prompt').dispatchEvent(
    new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
}"""


def _png(width: int, height: int) -> bytes:
    """A valid opaque PNG of one colour (RGB, 8 bits)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = (b"\x00" + b"\xd0\x40\x20" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _png_size(url: str) -> tuple[int, int]:
    head, _, b64 = url.partition(",")
    assert head == "data:image/png;base64"
    data = base64.b64decode(b64)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_images_in_for_vision_models(
    open_page: OpenPage, make_server: Any, base_config: Any
) -> None:
    expect = _expect()
    kwargs = {**base_config.client_kwargs, "providers": [*scripted.ALL, scripted.Seer]}
    page = open_page(make_server(client_kwargs=kwargs))
    _ready(page)
    expect(page.locator("#attach")).to_be_hidden()  # alpha takes no images
    page.evaluate(PASTE_IMAGE, base64.b64encode(_png(3, 2)).decode())
    expect(page.locator("#error-text")).to_have_text("alpha:m does not take images")
    expect(page.locator("#attachments")).to_be_hidden()

    page.select_option("#model", "seer:m")
    expect(page.locator("#attach")).to_be_visible()
    big = _png(2000, 1000)  # sent scaled to 1536 px at most
    page.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": big}])
    expect(page.locator("#attachments img")).to_have_count(1)
    page.evaluate(PASTE_IMAGE, base64.b64encode(_png(3, 2)).decode())
    expect(page.locator("#attachments img")).to_have_count(2)
    page.locator("#attachments button").nth(1).click()  # one removed again
    expect(page.locator("#attachments img")).to_have_count(1)
    scripted.SCRIPTS["seer"] = ["I see a dot.", llmrelay.FinishReason("stop")]
    _send(page, "What is this?")
    expect(_answer(page, 0).locator(".content")).to_have_text("I see a dot.")
    expect(page.locator(".msg.user .thumbs img")).to_have_count(1)
    expect(page.locator("#attachments")).to_be_hidden()
    (message,) = scripted.LOG["seer"].requests[-1].messages
    assert message.content == "What is this?"
    (image,) = message.images
    assert _png_size(image) == (1536, 768)
    # kept with the conversation, and sent again with the history
    page.reload()
    expect(page.locator(".msg.user .thumbs img")).to_have_count(1)
    scripted.SCRIPTS["seer"] = ["Still a dot.", llmrelay.FinishReason("stop")]
    _send(page, "And now?")
    expect(_answer(page, 1).locator(".content")).to_have_text("Still a dot.")
    first, _, second = scripted.LOG["seer"].requests[-1].messages
    assert (first.images, second.images) == ((image,), ())
    # an error before any text: the question is given back with its image
    scripted.SCRIPTS["seer"] = [
        llmrelay.ProviderUnavailable("the service is overloaded", provider="seer", model="m")
    ]
    page.evaluate(PASTE_IMAGE, base64.b64encode(_png(3, 2)).decode())
    _send(page, "And this?")
    expect(page.locator("#error-text")).to_have_text("seer (m): the service is overloaded")
    expect(page.locator("#prompt")).to_have_value("And this?")
    expect(page.locator("#attachments img")).to_have_count(1)
    expect(page.locator(".msg.user")).to_have_count(2)


def test_the_page_asks_for_the_server_key(open_page: OpenPage, make_server: Any) -> None:
    expect = _expect()
    page = open_page(make_server(api_key="page-key-1"))
    expect(page.locator("#key-form")).to_be_visible()
    page.fill("#key", "page-key-1")
    page.click("#key-form button")
    expect(page.locator("#key-form")).to_be_hidden()
    _ready(page)
    _send(page, "hi")
    expect(_answer(page, 0).locator(".content")).to_have_text("Hello, world!")
    assert page.evaluate("sessionStorage.getItem('llmrelay.serverKey')") == "page-key-1"
    # a key that stops working mid-session: asked again, the question is then sent
    page.evaluate("sessionStorage.setItem('llmrelay.serverKey', 'wrong')")
    _send(page, "again")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#prompt")).to_have_value("again")
    page.fill("#key", "page-key-1")
    page.click("#key-form button")
    expect(_answer(page, 1).locator(".content")).to_have_text("Hello, world!")
    expect(page.locator(".msg.user .content")).to_have_text(["hi", "again"])


@pytest.fixture(scope="module")
def demo_space() -> Iterator[tuple[str, ModuleType]]:
    pytest.importorskip("gradio")
    from tests.gradio_servers import launch_current

    with launch_current() as served:
        yield served


@pytest.mark.gradio
def test_the_system_prompt_reaches_the_demo_space(
    open_page: OpenPage,
    make_server: Any,
    base_config: Any,
    demo_space: tuple[str, ModuleType],
) -> None:
    expect = _expect()
    url, _ = demo_space
    server = make_server(
        client_kwargs={**base_config.client_kwargs, "base_urls": {"hf_spaces": url}}
    )
    page = open_page(server)
    _ready(page, "hf_spaces:Qwen/Qwen2-72B-Instruct")
    page.click("#settings-toggle")
    page.fill("#system", "You are a pirate.")
    _send(page, "Ahoy?")
    answer = _answer(page, 0)
    expect(answer.locator(".content")).to_contain_text("You said: Ahoy?")
    expect(answer.locator(".content")).to_contain_text("System: You are a pirate.")
    expect(answer.locator(".meta .who")).to_contain_text("Qwen/Qwen2-72B-Instruct")


@pytest.mark.gradio
def test_an_image_for_a_space_not_yet_known_is_given_back_when_refused(
    open_page: OpenPage,
    make_server: Any,
    base_config: Any,
    demo_space: tuple[str, ModuleType],
    tmp_path: Path,
) -> None:
    """A Space llmrelay does not know: its chat input is not known before it is
    discovered, so the page offers images; this one's input is a plain textbox, so the
    server refuses them naming the message, the page gives the question back, learns
    the model's vision and withdraws the offer."""
    expect = _expect()
    url, _ = demo_space
    config = tmp_path / "config.toml"
    config.write_text('[aliases]\nplain = ["hf_spaces:someone/plain-chat"]\n')
    kwargs = {**base_config.client_kwargs, "config_path": str(config)}
    kwargs["base_urls"] = {"hf_spaces": url}
    page = open_page(make_server(client_kwargs=kwargs))
    _ready(page, "plain")
    expect(page.locator("#attach")).to_be_visible()
    page.evaluate(PASTE_IMAGE, base64.b64encode(_png(3, 2)).decode())
    expect(page.locator("#attachments img")).to_have_count(1)
    _send(page, "Look?")
    expect(page.locator("#error-text")).to_contain_text("messages[0]")
    expect(page.locator("#error-text")).to_contain_text("hf_spaces")
    expect(page.locator("#prompt")).to_have_value("Look?")
    expect(page.locator(".msg.user")).to_have_count(0)
    expect(page.locator("#attach")).to_be_hidden()  # learnt: the Space takes no images
    expect(page.locator("#attachments")).to_be_hidden()
    _send(page, "Ahoy?")
    expect(_answer(page, 0).locator(".content")).to_contain_text("You said: Ahoy?")


@pytest.fixture(scope="module")
def multimodal_space() -> Iterator[str]:
    pytest.importorskip("gradio")
    from tests.gradio_servers import CHATINTERFACE, load_demo

    url, close = load_demo(CHATINTERFACE).launch_in_thread(multimodal=True)
    try:
        yield url
    finally:
        close()


@pytest.mark.gradio
def test_an_image_reaches_a_real_multimodal_space(
    open_page: OpenPage,
    make_server: Any,
    base_config: Any,
    multimodal_space: str,
    tmp_path: Path,
) -> None:
    """A real Gradio 6 ``gr.ChatInterface(multimodal=True)`` behind an alias: the page
    offers images (before discovery: not known; after: known to take them), and the
    Space's function receives the pasted one, uploaded through its own upload route."""
    expect = _expect()
    config = tmp_path / "config.toml"
    config.write_text('[aliases]\nlook = ["hf_spaces:someone/multimodal-chat"]\n')
    kwargs = {**base_config.client_kwargs, "config_path": str(config)}
    kwargs["base_urls"] = {"hf_spaces": multimodal_space}
    page = open_page(make_server(client_kwargs=kwargs))
    _ready(page, "look")
    expect(page.locator("#attach")).to_be_visible()  # not known yet (not discovered): offered
    _send(page, "hello")
    expect(_answer(page, 0).locator(".content")).to_contain_text("Echo: hello")
    page.reload()
    _ready(page, "look")
    expect(page.locator("#attach")).to_be_visible()  # the Space's chat input takes files
    assert page.evaluate(
        "async () => (await (await fetch('/v1/models')).json()).data"
        ".find((m) => m.id === 'look').vision"
    )
    page.evaluate(PASTE_IMAGE, base64.b64encode(_png(3, 2)).decode())
    expect(page.locator("#attachments img")).to_have_count(1)
    _send(page, "What is it?")
    content = _answer(page, 1).locator(".content")
    expect(content).to_contain_text("User: What is it?")  # the conversation, flattened
    expect(content).to_contain_text("image/png sha256:")
