"""The chat page in a real browser: Playwright for Python driving Debian's chromium against the
real service (`make run`'s stack). Screenshots go to var/artifacts/web/ (gitignored)."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from service_testlib import wait_for_answer

from app.api.main import create_app
from app.core.settings import REPO_ROOT, load_settings
from app.local.stack import free_port
from app.web import CONTENT_SECURITY_POLICY

ARTIFACTS = REPO_ROOT / "var" / "artifacts" / "web"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = (
    "Zebrafication procedure.\n\n"
    "To zebrafy the cluster, paste <script>window.__pwned = 1</script> and "
    '<img src="x" onerror="window.__pwned = 2"> into the zebrafy console.\n'
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: apt-get install chromium (.ci/run does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_service) -> Iterator[object]:
    live_service.emulator.reset()
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(live_service.base_url + "/")
    yield page
    context.close()
    live_service.emulator.reset()
    assert not violations, violations


def ask(page, question: str) -> object:
    page.fill("#question", question)
    page.keyboard.press("Enter")
    turn = page.locator("article.turn").last
    turn.locator(".answer:not(.pending)").wait_for(timeout=60_000)
    return turn


def test_page_is_served_with_a_strict_content_security_policy(live_service) -> None:
    response = httpx.get(live_service.base_url + "/")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "<script>" not in response.text and "style=" not in response.text  # no inline code
    script = httpx.get(live_service.base_url + "/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", script.text)


def test_tokens_stream_in_then_a_citation_opens_in_place_and_a_follow_up_keeps_context(
    live_service, page
) -> None:
    live_service.emulator.configure(token_latency_ms=120)
    page.fill("#question", "How do I restart the worker?")
    page.keyboard.press("Enter")
    turn = page.locator("article.turn").last
    pending = turn.locator(".answer.pending")
    # some text is on screen while the answer is still being written
    page.wait_for_function(
        "() => { const a = document.querySelector('article.turn .answer.pending');"
        " return a && a.textContent.trim().split(/\\s+/).length >= 2; }",
        timeout=60_000,
    )
    partial = pending.text_content() or ""
    page.screenshot(path=ARTIFACTS / "1-streaming.png")
    turn.locator(".answer:not(.pending)").wait_for(timeout=60_000)
    final = turn.locator(".answer").text_content() or ""
    assert len(final) > len(partial.strip()) and final.startswith(partial.strip()[:10])
    assert "restart" in final.lower()

    turn.locator("button.cite").first.click()
    passage = turn.locator(".passage")
    passage.wait_for()
    assert "runbook.md" in (passage.locator("h3").text_content() or "")
    assert (passage.locator(".passage-text").text_content() or "").strip()
    page.screenshot(path=ARTIFACTS / "2-citation-open.png")

    conversation = page.evaluate("sessionStorage.getItem('flowchat.conversation')")
    live_service.emulator.configure(token_latency_ms=0)
    follow_up = ask(page, "And how long until the backlog drains?")
    assert page.evaluate("sessionStorage.getItem('flowchat.conversation')") == conversation
    assert (follow_up.locator(".answer").text_content() or "").strip()
    assert page.locator("article.turn").count() == 2

    follow_up.get_by_role("button", name="Good answer").click()
    page.wait_for_selector("article.turn >> nth=1 >> .votes button[aria-pressed=true]")
    assert "Thanks" in (follow_up.locator(".vote-status").text_content() or "")
    metrics = httpx.get(live_service.base_url + "/metrics").text
    assert 'flowchat_feedback_total{vote="up"}' in metrics
    page.screenshot(path=ARTIFACTS / "3-follow-up-and-vote.png", full_page=True)


def test_keyboard_only_and_phone_sized(browser, live_service) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(live_service.base_url + "/")
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Enter")
        page.keyboard.type("How do I rotate the Flow credentials?")
        page.keyboard.press("Enter")
        page.locator("article.turn .answer:not(.pending)").wait_for(timeout=60_000)
        page.locator("button.cite").first.focus()
        page.keyboard.press("Enter")
        page.locator(".passage").wait_for()
        assert page.evaluate("document.activeElement.classList.contains('passage')")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
        page.screenshot(path=ARTIFACTS / "4-phone.png", full_page=True)
    finally:
        context.close()


def test_maintenance_banner_appears_and_goes_away_by_itself(live_service, page) -> None:
    api = httpx.Client(base_url=live_service.base_url, timeout=60)
    banner = page.locator("#banner")
    assert banner.is_hidden()
    live_service.emulator.configure(error_rate=1.0)
    for _ in range(2):  # MAINTENANCE_AFTER_FAILURES=2 for the test service
        job = api.post("/api/chat", json={"message": "What does the queue alert mean?"}).json()
        assert wait_for_answer(api, job["id"])["status"] == "failed"
    banner.wait_for(state="visible", timeout=60_000)
    assert "Flow" in (banner.text_content() or "")
    assert page.locator("#question").is_disabled()
    assert "paused" in (page.locator("#question-label").text_content() or "")
    page.screenshot(path=ARTIFACTS / "5-maintenance.png")

    live_service.emulator.reset()
    job = api.post("/api/chat", json={"message": "How do I restart the worker?"}).json()
    assert wait_for_answer(api, job["id"])["status"] == "finished"
    banner.wait_for(state="hidden", timeout=60_000)
    assert page.locator("#question").is_enabled()
    page.screenshot(path=ARTIFACTS / "6-recovered.png")


def test_a_hostile_source_is_rendered_as_text(live_service, page) -> None:
    admin = httpx.Client(
        base_url=live_service.base_url,
        headers={"Authorization": f"Bearer {live_service.admin_token}"},
        timeout=60,
    )
    uploaded = admin.post("/api/documents", files=[("files", ("zebra.txt", HOSTILE.encode()))])
    assert uploaded.status_code in (200, 201, 202), uploaded.text
    doc_id = uploaded.json()["documents"][0]["id"]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            docs = {d["id"]: d for d in admin.get("/api/documents").json()["documents"]}
            if docs[doc_id]["status"] not in ("queued", "ingesting"):
                break
            time.sleep(0.3)
        assert docs[doc_id]["status"] == "ingested", docs[doc_id]
        turn = ask(page, "How do I zebrafy the cluster?")
        turn.locator("button.source-button", has_text="zebra.txt").first.click()
        passage = turn.locator(".passage .passage-text")
        passage.wait_for()
        assert "<script>window.__pwned = 1</script>" in (passage.text_content() or "")
        assert "<script>" in (turn.locator(".answer").text_content() or "")
        assert page.evaluate("window.__pwned === undefined")
        assert page.locator("article.turn script, article.turn img").count() == 0
        page.screenshot(path=ARTIFACTS / "7-hostile-source.png")
    finally:
        admin.delete(f"/api/documents/{doc_id}")


@pytest.fixture
def keyed_api(redis_url: str) -> Iterator[str]:
    """The API alone (no worker) with an API key, served over loopback for the browser."""
    settings = load_settings(REDIS_URL=redis_url, API_KEYS="page-key")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_page_asks_for_the_api_key_once_and_keeps_it_for_the_tab(browser, keyed_api) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(keyed_api + "/")
        page.fill("#question", "How do I restart the worker?")
        page.keyboard.press("Enter")
        dialog = page.locator("#key-dialog")
        dialog.wait_for(state="visible")
        page.screenshot(path=ARTIFACTS / "8-api-key.png")
        page.fill("#key-input", "page-key")
        page.keyboard.press("Enter")
        page.locator("article.turn .question").wait_for()
        page.wait_for_function("() => document.querySelector('article.turn').dataset.job")
        assert page.evaluate("sessionStorage.getItem('flowchat.apiKey')") == "page-key"
        asked = []
        page.on("request", lambda r: asked.append(r.headers.get("x-api-key")))
        page.click("#new-conversation")
        page.fill("#question", "A second question")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "() => document.querySelectorAll('article.turn').length === 1 &&"
            " document.querySelector('article.turn').dataset.job"
        )
        assert dialog.is_hidden()
        assert "page-key" in asked
    finally:
        context.close()
