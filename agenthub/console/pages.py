"""The console's HTML, rendered on the server: every value written by an agent or a person
goes through `e()` (HTML-escaped) and nothing here is script. Pages that need live data load
static/console.js, which renders with `textContent` only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from agenthub.agents.schemas import AgentPublic

STATIC = "/console/static"
PREVIEW_CHARS = 120
# A room of kind `direct` (docs/API.md section 10): two agents' private conversation.
DIRECT_TAG = '<span class="tag direct">direct messages</span>'


def e(value: object) -> str:
    return escape(str(value), quote=True)


def clip(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Viewer:
    """Who is looking, for the page's header (None on the sign-in page)."""

    agent: AgentPublic
    csrf: str


def layout(
    title: str,
    main: str,
    *,
    viewer: Viewer | None,
    csrf: str,
    page: str,
    data: Iterable[tuple[str, str]] = (),
    scripts: Iterable[str] = (),
) -> str:
    attrs = "".join(f' data-{name}="{e(value)}"' for name, value in data)
    tags = "".join(f'\n  <script src="{STATIC}/{name}" defer></script>' for name in scripts)
    nav = ""
    if viewer is not None:
        admin = (
            '<li><a href="/console/admin">Administration</a></li>'
            if viewer.agent.role == "admin"
            else ""
        )
        nav = f"""
  <header class="top">
    <nav aria-label="Console">
      <ul>
        <li><a href="/console/rooms">Rooms</a></li>{admin}
      </ul>
    </nav>
    <form method="post" action="/console/sign-out" class="signout">
      <span>Signed in as <strong>{e(viewer.agent.name)}</strong> ({e(viewer.agent.role)})</span>
      <input type="hidden" name="csrf" value="{e(csrf)}">
      <button type="submit">Sign out</button>
    </form>
  </header>"""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="csrf-token" content="{e(csrf)}">
  <title>{e(title)} · AgentHub console</title>
  <link rel="icon" href="{STATIC}/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{STATIC}/console.css">{tags}
</head>
<body data-page="{e(page)}"{attrs}>
  <a class="skip" href="#main">Skip to content</a>{nav}
  <main id="main" tabindex="-1">
{main}
  </main>
</body>
</html>
"""


SIGN_IN_REASONS = {
    "expired": "Your console session has ended. Sign in again.",
    "revoked": "Your API token has been revoked. Sign in with another token.",
    "signed-out": "You are signed out.",
}


def sign_in(csrf: str, *, reason: str | None = None, error: str | None = None) -> str:
    notice = ""
    if error:
        notice = f'<p class="error" role="alert">{e(error)}</p>'
    elif reason in SIGN_IN_REASONS:
        notice = f'<p class="notice" role="status">{e(SIGN_IN_REASONS[reason])}</p>'
    main = f"""    <h1>Sign in to AgentHub</h1>
    {notice}
    <form method="post" action="/console/sign-in" class="card">
      <input type="hidden" name="csrf" value="{e(csrf)}">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" required
             maxlength="200" spellcheck="false" aria-describedby="token-help">
      <p id="token-help" class="help">An agent's API token (agt_…). The console acts as
        that agent; its session lasts while this tab is open.</p>
      <button type="submit">Sign in</button>
    </form>"""
    return layout("Sign in", main, viewer=None, csrf=csrf, page="sign-in")


@dataclass(frozen=True)
class RoomRow:
    id: str
    slug: str
    name: str
    kind: str
    member: bool
    last_seq: int | None
    last_at: str | None
    last_sender: str | None
    last_body: str | None


def rooms(viewer: Viewer, rows: list[RoomRow], *, all_rooms: bool) -> str:
    heading = "All rooms" if all_rooms else "Your rooms"
    if not rows:
        table = "<p>No rooms yet.</p>"
    else:
        body = []
        for r in rows:
            if r.last_seq is None:
                latest = "<td>no messages yet</td>"
            else:
                latest = (
                    f'<td><time datetime="{e(r.last_at)}">{e(r.last_at)}</time> · '
                    f"#{r.last_seq} <strong>{e(r.last_sender)}</strong>: "
                    f'<span class="preview">{e(clip(r.last_body or ""))}</span></td>'
                )
            member = "member" if r.member else "not a member"
            direct = f" {DIRECT_TAG}" if r.kind == "direct" else ""
            body.append(
                f'<tr><th scope="row"><a href="/console/rooms/{e(r.slug)}">{e(r.name)}</a>'
                f"{direct}</th>"
                f"<td>{e(r.slug)}</td><td>{member}</td>{latest}</tr>"
            )
        table = f"""<table>
      <caption>{e(heading)}, latest activity first</caption>
      <thead><tr><th scope="col">Room</th><th scope="col">Slug</th>
        <th scope="col">You</th><th scope="col">Latest activity</th></tr></thead>
      <tbody>{"".join(body)}</tbody>
    </table>"""
    main = f"""    <h1>{e(heading)}</h1>
    {table}"""
    return layout("Rooms", main, viewer=viewer, csrf=viewer.csrf, page="rooms")


def room(viewer: Viewer, room_id: str, slug: str, name: str, *, member: bool, kind: str) -> str:
    direct = f" {DIRECT_TAG}" if kind == "direct" else ""
    composer = (
        """<form id="composer" class="composer">
        <label for="message">Message</label>
        <textarea id="message" name="body" rows="3" required></textarea>
        <button type="submit">Send</button>
        <p id="send-status" role="status" class="help"></p>
      </form>"""
        if member
        else '<p class="help">You are not a member of this room: you can read it, '
        "not post in it or appear in it.</p>"
    )
    main = f"""    <h1>{e(name)}{direct}</h1>
    <p class="help">Room <code>{e(slug)}</code> ·
      <span id="conn" role="status">connecting…</span></p>
    <div class="room">
      <section aria-labelledby="messages-h" class="messages">
        <h2 id="messages-h">Messages</h2>
        <button type="button" id="older" hidden>Load older messages</button>
        <div id="log" role="log" aria-labelledby="messages-h" tabindex="0" class="log">
          <ol id="messages"></ol>
        </div>
        {composer}
      </section>
      <aside class="side">
        <section aria-labelledby="present-h">
          <h2 id="present-h">Present</h2>
          <ul id="present" aria-labelledby="present-h"></ul>
        </section>
        <section aria-labelledby="members-h">
          <h2 id="members-h">Members</h2>
          <ul id="members" aria-labelledby="members-h"></ul>
        </section>
      </aside>
    </div>"""
    return layout(
        name,
        main,
        viewer=viewer,
        csrf=viewer.csrf,
        page="room",
        data=[("room-id", room_id), ("room-slug", slug), ("member", "1" if member else "")],
        scripts=["socket.io.min.js", "console.js"],
    )


CURRENT = ' aria-current="page"'
ADMIN_TABS = (
    ("/console/admin", "Agents and tokens"),
    ("/console/admin/rooms", "Room members"),
    ("/console/admin/audit", "Audit log"),
)


def _admin(viewer: Viewer, current: str, title: str, page: str, section: str) -> str:
    tabs = "".join(
        f'<li><a href="{href}"{CURRENT if href == current else ""}>{e(label)}</a></li>'
        for href, label in ADMIN_TABS
    )
    main = f"""    <h1>Administration: {e(title)}</h1>
    <nav aria-label="Administration"><ul class="tabs">{tabs}</ul></nav>
    <p id="status" role="status" class="notice" hidden></p>
{section}"""
    return layout(title, main, viewer=viewer, csrf=viewer.csrf, page=page, scripts=["console.js"])


def admin_agents(viewer: Viewer) -> str:
    section = """    <section aria-labelledby="agents-h">
      <h2 id="agents-h">Agents</h2>
      <table>
        <caption>Every agent</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Display name</th>
          <th scope="col">Role</th><th scope="col">Created</th></tr></thead>
        <tbody id="agents"></tbody>
      </table>
      <form id="create-agent" class="card">
        <h3>Create an agent</h3>
        <label for="agent-name">Name</label>
        <input id="agent-name" name="name" required maxlength="64" spellcheck="false">
        <label for="agent-display">Display name</label>
        <input id="agent-display" name="displayName" required maxlength="200">
        <label for="agent-role">Role</label>
        <select id="agent-role" name="role">
          <option value="agent">agent</option><option value="admin">admin</option>
        </select>
        <button type="submit">Create agent</button>
      </form>
    </section>
    <section aria-labelledby="tokens-h">
      <h2 id="tokens-h">API tokens</h2>
      <form id="pick-agent" class="inline">
        <label for="token-agent">Agent</label>
        <select id="token-agent" name="agent"></select>
        <button type="submit">Show tokens</button>
        <button type="button" id="issue">Issue token</button>
      </form>
      <div id="issued" class="card" hidden>
        <p>New token for <strong id="issued-for"></strong>, shown only now: copy it.</p>
        <label for="issued-token">New API token</label>
        <input id="issued-token" readonly spellcheck="false">
        <button type="button" id="copy">Copy</button>
      </div>
      <table>
        <caption id="tokens-caption">Tokens</caption>
        <thead><tr><th scope="col">Prefix</th><th scope="col">Created</th>
          <th scope="col">Last used</th><th scope="col">Expires</th>
          <th scope="col">State</th></tr></thead>
        <tbody id="tokens"></tbody>
      </table>
    </section>"""
    return _admin(viewer, "/console/admin", "agents and tokens", "admin-agents", section)


def admin_rooms(viewer: Viewer) -> str:
    section = """    <section aria-labelledby="members-h">
      <h2 id="members-h">Members of a room</h2>
      <form id="pick-room" class="inline">
        <label for="member-room">Room</label>
        <select id="member-room" name="room"></select>
        <button type="submit">Show members</button>
      </form>
      <ul id="room-members" aria-labelledby="members-h"></ul>
      <form id="add-member" class="inline">
        <label for="member-agent">Agent to add</label>
        <select id="member-agent" name="agent"></select>
        <button type="submit">Add member</button>
      </form>
    </section>"""
    return _admin(viewer, "/console/admin/rooms", "room members", "admin-rooms", section)


def admin_audit(viewer: Viewer) -> str:
    section = """    <section aria-labelledby="audit-h">
      <h2 id="audit-h">Audit log</h2>
      <form id="audit-filter" class="inline">
        <label for="audit-type">Type</label>
        <input id="audit-type" name="type" maxlength="64" placeholder="e.g. login"
               spellcheck="false">
        <label for="audit-agent">Agent</label>
        <input id="audit-agent" name="agent" maxlength="64" spellcheck="false">
        <button type="submit">Filter</button>
      </form>
      <table>
        <caption>Audit events, newest first</caption>
        <thead><tr><th scope="col">Time</th><th scope="col">Type</th>
          <th scope="col">Actor</th><th scope="col">Details</th></tr></thead>
        <tbody id="audit"></tbody>
      </table>
      <button type="button" id="audit-more" hidden>Load more</button>
    </section>"""
    return _admin(viewer, "/console/admin/audit", "audit log", "admin-audit", section)


def refusal(viewer: Viewer, status: int, message: str) -> str:
    title = "Not allowed" if status == 403 else "Not found"
    main = f"""    <h1>{e(title)}</h1>
    <p role="alert">{e(message)}</p>
    <p><a href="/console/rooms">Back to the rooms</a></p>"""
    return layout(title, main, viewer=viewer, csrf=viewer.csrf, page="refusal")
