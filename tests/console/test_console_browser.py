"""The console in a real browser: Debian's Chromium driven by Playwright (tests/console/browser.py).

Each test signs a person in as an agent of its own and watches what real agents do over REST
and Socket.IO. Screenshots of each page (from the SQLite run) go to a temporary folder, or to
$AGENTHUB_CONSOLE_SCREENSHOTS (docs/console/ for the README's pictures)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest_asyncio
import socketio

from tests.console.browser import axe_violations, browser_ready, launch
from tests.support import Agent, Server, uniq

NS = "/agents"
WAIT_MS = 10_000  # the bound on any single expected change of the page
# The README's pictures: refreshed only on request, so that a test run leaves the checkout as it
# was (`AGENTHUB_CONSOLE_SCREENSHOTS=docs/console make pytest PYTEST_ARGS=tests/console`).
SHOTS = Path(
    os.environ.get("AGENTHUB_CONSOLE_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "agenthub-console-screenshots"
)


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    executable = browser_ready()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await launch(playwright, executable)
        try:
            yield chromium
        finally:
            await chromium.close()


class Watched:
    """A page and what went wrong on it: script errors, CSP reports, dialogs (alert() & co)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e]


@asynccontextmanager
async def opened(browser: Any, *, bypass_csp: bool = False) -> AsyncIterator[Watched]:
    context = await browser.new_context(
        bypass_csp=bypass_csp, viewport={"width": 1200, "height": 800}
    )
    try:
        yield Watched(await context.new_page())
    finally:
        await context.close()


async def sign_in(page: Any, server: Server, agent: Agent) -> None:
    await page.goto(server.base_url + "/console")
    await page.get_by_label("API token").fill(agent.token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/rooms", timeout=WAIT_MS)


async def open_room(page: Any, server: Server, slug: str) -> None:
    """The room's page, once its socket is live (its catch-up done)."""
    from playwright.async_api import expect

    await page.goto(f"{server.base_url}/console/rooms/{slug}")
    await expect(page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)


@asynccontextmanager
async def agent_socket(server: Server, agent: Agent) -> AsyncIterator[socketio.AsyncSimpleClient]:
    client = socketio.AsyncSimpleClient()
    await client.connect(
        server.base_url,
        auth={"token": agent.jwt},
        namespace=NS,
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def next_event(client: socketio.AsyncSimpleClient, name: str, within: float = 10) -> Any:
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {name} within {within}s")
        event = await client.receive(timeout=left)
        if event[0] == name:
            return event[1] if len(event) > 1 else None


async def screenshot(page: Any, server: Server, name: str) -> None:
    if server.backend == "sqlite":  # one set of pictures, not one per backend
        await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def test_sign_in_rooms_and_sign_out(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    alice = server.new_agent()
    room = server.new_room(alice)
    r = alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "the latest word"})
    assert r.status_code == 201, r.text
    async with opened(browser) as w:
        page = w.page
        await page.goto(server.base_url + "/console/rooms")  # not signed in: to the sign-in page
        await expect(page.get_by_role("heading", name="Sign in to AgentHub")).to_be_visible()
        await screenshot(page, server, "sign-in")

        await page.get_by_label("API token").fill("agt_nope00_" + "x" * 43)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("invalid, expired or revoked")

        await sign_in(page, server, alice)
        row = page.get_by_role("row").filter(has_text=room["slug"])
        await expect(row).to_contain_text("the latest word")
        await expect(row).to_contain_text(alice.name)
        await screenshot(page, server, "rooms")
        cookies = {c["name"]: c for c in await page.context.cookies()}
        session = cookies["agenthub_console"]
        assert session["httpOnly"], session
        assert session["sameSite"] == "Strict", session
        assert session["path"] == "/console", session

        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url("**/console/sign-in?reason=signed-out", timeout=WAIT_MS)
        await expect(page.get_by_role("status")).to_contain_text("You are signed out")
        await page.goto(server.base_url + "/console/rooms")
        await expect(page.get_by_role("heading", name="Sign in to AgentHub")).to_be_visible()
        assert w.csp_violations() == []
        assert w.dialogs == []


async def test_a_room_live_rest_message_composer_and_presence(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    alice, bob = server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)
    slug = room["slug"]
    assert bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "before"}).status_code == 201
    async with opened(browser) as w, agent_socket(server, bob) as sock:
        page = w.page
        await sign_in(page, server, alice)
        await open_room(page, server, slug)
        log = page.get_by_role("log")
        await expect(log.get_by_text("before")).to_be_visible()
        await page.evaluate("window.__sameDocument = true")

        # An agent's REST send appears without a reload.
        r = bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "sent over REST"})
        assert r.status_code == 201, r.text
        item = log.get_by_role("listitem").filter(has_text="sent over REST")
        await expect(item).to_be_visible(timeout=WAIT_MS)
        await expect(item).to_contain_text(bob.name)
        assert await page.evaluate("window.__sameDocument") is True

        # What the person types reaches the agent's socket, sent as the signed-in agent.
        await page.get_by_role("textbox", name="Message").fill("typed in the console")
        await page.get_by_role("button", name="Send").click()
        while True:
            message = await next_event(sock, "message:new")
            if message["body"] == "typed in the console":
                break
        assert message["senderId"] == alice.id
        assert message["roomId"] == room["id"]
        await expect(log.get_by_text("typed in the console")).to_be_visible()
        await expect(page.get_by_role("textbox", name="Message")).to_have_value("")

        # An agent joining shows in "Present"; the person's own agent is there already.
        present = page.get_by_role("list", name="Present")
        await expect(present).to_contain_text(alice.name)
        await expect(present).not_to_contain_text(bob.name)
        ack = await sock.call("room:join", {"roomId": room["id"]}, timeout=10)
        assert ack["ok"], ack
        await expect(present).to_contain_text(bob.name, timeout=WAIT_MS)
        await expect(page.get_by_role("list", name="Members")).to_contain_text(bob.name)
        await screenshot(page, server, "room")
        assert w.errors == [], w.errors


async def test_older_messages_load_when_scrolling_up(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    alice = server.new_agent()
    slug = server.new_room(alice)["slug"]
    for i in range(1, 61):
        r = alice.post(f"/api/v1/rooms/{slug}/messages", {"body": f"number {i:02d}"})
        assert r.status_code == 201, r.text
    async with opened(browser) as w:
        page = w.page
        await sign_in(page, server, alice)
        await open_room(page, server, slug)
        items = page.get_by_role("log").get_by_role("listitem")
        await expect(items).to_have_count(50)  # the newest page
        await expect(page.get_by_text("number 01", exact=True)).to_have_count(0)
        await page.locator("#log").evaluate("log => { log.scrollTop = 0; }")
        await expect(items).to_have_count(60, timeout=WAIT_MS)
        assert await items.first.inner_text()
        assert "number 01" in await items.first.inner_text()


async def test_hostile_bodies_render_as_text(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    alice = server.new_agent()
    slug = server.new_room(alice)["slug"]
    hostile = [
        "<script>window.__pwned = 'script'; alert('script')</script>",
        "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
        "**bold** <b>not bold</b> <a href='javascript:alert(1)'>link</a>",
    ]
    for body in hostile:
        assert alice.post(f"/api/v1/rooms/{slug}/messages", {"body": body}).status_code == 201
    async with opened(browser) as w:
        page = w.page
        await sign_in(page, server, alice)
        room_page = page.get_by_role("row").filter(has_text=slug)
        await expect(room_page).to_contain_text("<b>not bold</b>")  # the rooms page's preview
        await open_room(page, server, slug)
        log = page.get_by_role("log")
        for body in hostile:
            await expect(log.get_by_text(body, exact=True)).to_be_visible()
        # Live too: a hostile body arriving on the socket.
        live = "<img src=y onerror=\"window.__pwned = 'live'\">live"
        assert alice.post(f"/api/v1/rooms/{slug}/messages", {"body": live}).status_code == 201
        await expect(log.get_by_text(live, exact=True)).to_be_visible(timeout=WAIT_MS)
        assert await log.locator("img, script, b, a").count() == 0
        assert await page.evaluate("window.__pwned") is None
        assert w.dialogs == []


async def test_an_admin_issues_and_revokes_a_token(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    admin = server.new_agent(role="admin")
    name = uniq("made")
    async with opened(browser) as w:
        page = w.page
        await sign_in(page, server, admin)
        await page.get_by_role("link", name="Administration").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("agents and tokens")
        await expect(page.get_by_role("table", name="Every agent")).to_contain_text(admin.name)
        await screenshot(page, server, "admin-agents")

        await page.get_by_label("Name", exact=True).fill(name)
        await page.get_by_label("Display name").fill("Made In The Console")
        await page.get_by_role("button", name="Create agent").click()
        await expect(page.get_by_role("status")).to_contain_text(f"Agent {name} created")
        await expect(page.get_by_role("table", name="Every agent")).to_contain_text(name)

        await page.get_by_label("Agent", exact=True).select_option(name)
        await page.get_by_role("button", name="Issue token").click()
        field = page.get_by_label("New API token")
        await expect(field).to_have_value(re.compile(r"^agt_"), timeout=WAIT_MS)
        token = await field.input_value()
        assert server.api.session(token).status_code == 201  # the token works
        assert await page.get_by_role("button", name="Copy").is_visible()
        prefix = token[:10]
        tokens = page.get_by_role("table", name=f"Tokens of {name}")
        await expect(tokens).to_contain_text(prefix)

        await page.get_by_role("button", name=f"Revoke {prefix}").click()
        await expect(page.get_by_role("status")).to_contain_text(f"Token {prefix} revoked")
        await expect(tokens.get_by_role("row").filter(has_text=prefix)).to_contain_text("revoked")
        assert server.api.session(token).status_code == 401

        await page.get_by_role("link", name="Room members").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("room members")
        await screenshot(page, server, "admin-rooms")
        await page.get_by_role("link", name="Audit log").click()
        await page.get_by_label("Type").fill("token-revoked")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_role("table", name="Audit events, newest first")).to_contain_text(
            prefix, timeout=WAIT_MS
        )
        await screenshot(page, server, "admin-audit")
        assert w.csp_violations() == [], w.errors


async def test_a_non_admin_cannot_reach_the_admin_pages(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    bob = server.new_agent()
    async with opened(browser) as w:
        page = w.page
        await sign_in(page, server, bob)
        await expect(page.get_by_role("link", name="Administration")).to_have_count(0)
        for path in ("/console/admin", "/console/admin/rooms", "/console/admin/audit"):
            answer = await page.goto(server.base_url + path)
            assert answer is not None
            assert answer.status == 403, path
            await expect(page.get_by_role("alert")).to_contain_text("Administration is for admins")
    # and the API refuses the same agent
    assert bob.get("/api/v1/audit-events").status_code == 403
    r = bob.post("/api/v1/agents", {"name": uniq("nope"), "displayName": "Nope"})
    assert r.status_code == 403
    assert bob.post(f"/api/v1/agents/{bob.name}/tokens", {}).status_code == 403
    assert bob.get("/api/v1/rooms?all=true").status_code == 403


async def test_a_revoked_token_sends_the_person_back_to_sign_in(
    browser: Any, server: Server
) -> None:
    from playwright.async_api import expect

    carol = server.new_agent()
    slug = server.new_room(carol)["slug"]
    async with opened(browser) as w:
        page = w.page
        await sign_in(page, server, carol)
        await open_room(page, server, slug)
        r = server.admin.delete(f"/api/v1/tokens/{carol.token[:10]}")
        assert r.status_code == 204, r.text
        await page.wait_for_url("**/console/sign-in?reason=revoked", timeout=WAIT_MS)
        await expect(page.get_by_role("status")).to_contain_text("has been revoked")
        answer = await page.goto(f"{server.base_url}/console/rooms/{slug}")
        assert answer is not None
        assert "/console/sign-in" in page.url


async def test_every_page_passes_an_accessibility_scan(browser: Any, server: Server) -> None:
    admin = server.new_agent(role="admin")
    agent = server.new_agent()
    slug = server.new_room(admin, agent)["slug"]
    admin.post(f"/api/v1/rooms/{slug}/messages", {"body": "a message to look at"})
    found: dict[str, list[dict[str, Any]]] = {}
    async with opened(browser, bypass_csp=True) as w:  # axe is injected inline
        page = w.page
        await page.goto(server.base_url + "/console/sign-in")
        found["sign-in"] = await axe_violations(page)
        await sign_in(page, server, admin)
        found["rooms"] = await axe_violations(page)
        await open_room(page, server, slug)
        found["room"] = await axe_violations(page)
        for path in ("/console/admin", "/console/admin/rooms", "/console/admin/audit"):
            await page.goto(server.base_url + path)
            await page.wait_for_load_state("networkidle")
            found[path] = await axe_violations(page)
        await page.goto(server.base_url + "/console/admin")
        await page.get_by_role("button", name="Issue token").click()
        await page.get_by_label("New API token").wait_for()
        found["token issued"] = await axe_violations(page)
    assert {page: v for page, v in found.items() if v} == {}


async def test_signing_in_and_posting_with_the_keyboard_alone(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    alice = server.new_agent()
    slug = server.new_room(alice)["slug"]
    async with opened(browser) as w:
        page = w.page
        await page.goto(server.base_url + "/console/sign-in")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("API token")).to_be_focused()
        await page.keyboard.type(alice.token)
        await page.keyboard.press("Enter")
        await page.wait_for_url("**/console/rooms", timeout=WAIT_MS)
        await open_room(page, server, slug)
        order = []
        for _ in range(12):
            await page.keyboard.press("Tab")
            focused = await page.evaluate(
                "() => document.activeElement.id || document.activeElement.textContent.trim()"
            )
            order.append(focused)
            if focused == "message":
                break
        # header links, sign-out, the message log (scrollable by keys), then the composer
        assert order[:2] == ["Skip to content", "Rooms"], order
        assert order.index("Sign out") < order.index("log") < order.index("message"), order
        await page.keyboard.type("sent from the keyboard")
        await page.keyboard.press("Control+Enter")
        log = page.get_by_role("log")
        await expect(log.get_by_text("sent from the keyboard")).to_be_visible(timeout=WAIT_MS)


async def test_mentions_replies_acknowledgements_and_direct_rooms(
    browser: Any, server: Server
) -> None:
    """The coordination fields (docs/API.md section 10) as the room page shows them: from
    history and live, acknowledgements updated from `ack:update` without a reload."""
    from playwright.async_api import expect

    alice, bob, carol = server.new_agent(), server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob, carol)
    slug = room["slug"]
    messages = f"/api/v1/rooms/{slug}/messages"
    r = bob.post(messages, {"body": f"@{carol.name} can you look at the build?"})
    assert r.status_code == 201, r.text
    asked = r.json()
    assert asked["mentions"] == [carol.id]
    r = alice.post(f"/api/v1/direct/{bob.name}/messages", {"body": "a word in private"})
    assert r.status_code == 201, r.text
    direct_id = r.json()["roomId"]
    direct = next(x for x in alice.get("/api/v1/rooms").json()["rooms"] if x["id"] == direct_id)
    assert direct["kind"] == "direct"
    hostile = "<img src=x onerror=\"window.__pwned = 'note'; alert('note')\"> blocked on CI"
    found: dict[str, list[dict[str, Any]]] = {}
    async with opened(browser, bypass_csp=True) as w:  # axe is injected inline
        page = w.page
        await sign_in(page, server, alice)
        row = page.get_by_role("row").filter(has_text=direct["slug"])
        await expect(row.get_by_role("rowheader")).to_contain_text("direct messages")
        group_row = page.get_by_role("row").filter(has_text=slug)
        await expect(group_row.get_by_role("rowheader")).not_to_contain_text("direct messages")
        found["rooms"] = await axe_violations(page)
        await open_room(page, server, direct["slug"])
        await expect(page.get_by_role("heading", level=1)).to_contain_text("direct messages")

        await open_room(page, server, slug)
        await page.evaluate("window.__sameDocument = true")
        log = page.get_by_role("log")
        first = page.locator(f"#m-{asked['seq']}")
        await expect(first.locator(".mentions")).to_have_text(f"mentions @{carol.name}")

        # Live: a reply, and a message asking for an acknowledgement.
        r = carol.post(messages, {"body": "looking now", "replyTo": asked["seq"]})
        assert r.status_code == 201, r.text
        reply = r.json()
        assert reply["replyTo"] == asked["seq"]
        r = bob.post(messages, {"body": "deploy when green", "ackFrom": [carol.name]})
        assert r.status_code == 201, r.text
        ask = r.json()
        assert [a["agentId"] for a in ask["acks"]] == [carol.id]

        link = page.locator(f"#m-{reply['seq']}").get_by_role(
            "link", name=f"reply to #{asked['seq']}"
        )
        await expect(link).to_be_visible(timeout=WAIT_MS)
        acks = page.get_by_role("list", name=f"Acknowledgements of #{ask['seq']}")
        await expect(acks).to_have_text(f"{carol.name}: waiting", timeout=WAIT_MS)
        found["room"] = await axe_violations(page)

        answer = f"{messages}/{ask['seq']}/acks"
        r = carol.post(answer, {"status": "seen", "note": hostile})
        assert r.status_code == 200, r.text
        await expect(acks).to_contain_text(f"{carol.name}: seen", timeout=WAIT_MS)
        await expect(acks.locator(".note")).to_have_text(hostile)
        assert await log.locator("img, script").count() == 0
        assert await page.evaluate("window.__pwned") is None
        r = carol.post(answer, {"status": "done", "note": "deployed"})
        assert r.status_code == 200, r.text
        await expect(acks).to_contain_text(f"{carol.name}: done", timeout=WAIT_MS)
        await expect(acks.locator(".note")).to_have_text("deployed")
        assert await page.evaluate("window.__sameDocument") is True  # no reload

        # The composer says when an @name was no mention (not a member).
        await page.get_by_role("textbox", name="Message").fill("@nobody-here-at-all hello")
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator("#send-status")).to_contain_text(
            "not mentioned: @nobody-here-at-all", timeout=WAIT_MS
        )

        await link.click()  # jumps to the message answered
        await expect(first).to_be_focused()
        await screenshot(page, server, "room-coordination")

        # After a reload the answers come from history.
        await page.reload()
        await expect(page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)
        await expect(acks).to_contain_text(f"{carol.name}: done")
        await expect(log.locator(".mention")).to_have_text([f"@{carol.name}"])
        await expect(page.locator(f"#m-{reply['seq']} a.reply")).to_have_attribute(
            "href", f"#m-{asked['seq']}"
        )
        assert w.dialogs == []
        assert w.errors == [], w.errors
    assert {name: v for name, v in found.items() if v} == {}
