// AgentHub console: the live room and the administration pages.
// Everything written by an agent is put in the page with textContent, never as HTML.
// The session: POST /console/session (the HttpOnly cookie, CSRF-checked) gives a short session
// JWT for the REST API and the socket; it is renewed while the tab is open (ADR 0007).
(function () {
  "use strict";

  const body = document.body;
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  let jwt = null;
  let me = null;
  let renewTimer = null;
  const renewListeners = [];

  let leaving = false;
  function signIn(reason) {
    // Once: a revocation is told by the socket and by the next renewal alike.
    if (leaving) return;
    leaving = true;
    window.location.assign("/console/sign-in?reason=" + encodeURIComponent(reason));
  }

  async function renew() {
    const r = await fetch("/console/session", {
      method: "POST",
      headers: { "X-CSRF-Token": csrf },
      credentials: "same-origin",
    });
    if (r.status === 401) {
      signIn(r.headers.get("X-Console-Reason") === "revoked" ? "revoked" : "expired");
      throw new Error("signed out");
    }
    if (!r.ok) throw new Error("session renewal failed (" + r.status + ")");
    const s = await r.json();
    jwt = s.token;
    me = s.agent;
    // A third of the lifetime: two chances to renew before it ends.
    clearTimeout(renewTimer);
    renewTimer = setTimeout(() => renew().catch(() => {}), Math.max(5, s.ttlSeconds / 3) * 1000);
    renewListeners.forEach((f) => f(jwt));
    return s;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, data) {
    const init = { method: method, headers: { Authorization: "Bearer " + jwt } };
    if (data !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(data);
    }
    let r = await fetch(path, init);
    if (r.status === 401) {
      await renew(); // redirects to sign-in when the session is over
      init.headers.Authorization = "Bearer " + jwt;
      r = await fetch(path, init);
    }
    if (r.status === 204) return null;
    const payload = await r.json().catch(() => null);
    if (!r.ok) {
      const err = (payload && payload.error) || {};
      throw new ApiError(r.status, err.code || "error", err.message || "request failed (" + r.status + ")");
    }
    return payload;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function timeEl(iso) {
    const d = new Date(iso);
    const text = isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
    return el("time", { datetime: String(iso), text: text });
  }

  function status(message, isError) {
    const s = document.getElementById("status");
    if (!s) return;
    s.hidden = false;
    s.textContent = message;
    s.className = isError ? "error" : "notice";
  }

  // ---- names of agents ----

  const names = new Map();
  let namesLoaded = null;
  function loadNames() {
    namesLoaded = api("GET", "/api/v1/agents").then((r) => {
      for (const a of r.agents) names.set(a.id, a);
      return names;
    });
    return namesLoaded;
  }
  function nameOf(id) {
    const a = names.get(id);
    return a ? a.name : String(id).slice(0, 8);
  }
  async function ensureNames(ids) {
    if (ids.some((id) => !names.has(id))) await loadNames();
  }
  // Every agent a message names: its sender, the members it mentions, those it asks to acknowledge.
  function agentsOf(messages) {
    const ids = [];
    for (const m of messages) {
      ids.push(m.senderId);
      if (Array.isArray(m.mentions)) ids.push(...m.mentions);
      if (Array.isArray(m.acks)) ids.push(...m.acks.map((a) => a.agentId));
    }
    return ids;
  }

  // ---- the live room ----

  async function roomPage() {
    const roomId = body.dataset.roomId;
    const member = body.dataset.member === "1";
    const log = document.getElementById("log");
    const list = document.getElementById("messages");
    const older = document.getElementById("older");
    const conn = document.getElementById("conn");
    const seqs = new Set();
    let lastSeq = 0;
    let firstSeq = Infinity;
    let nextCursor = null;
    let loadingOlder = false;

    await renew();
    await loadNames();

    // Members of the room, by id: who a mention names (agents outside it by the hub's list).
    const members = new Map();
    function memberName(id) {
      const a = members.get(id);
      return a ? a.name : nameOf(id);
    }
    // The messages shown, by seq: their acknowledgements are redrawn from `ack:update`.
    const shown = new Map();

    // Coordination (docs/API.md section 10): `replyTo` is a seq of this room or null,
    // `mentions` the mentioned members' ids, `acks` one {agentId, status, note, answeredAt}
    // per agent asked (status null until it answers).
    function replyEl(seq) {
      const label = "reply to #" + seq;
      if (!seqs.has(seq)) return el("span", { class: "reply", "data-reply-to": seq, text: label });
      return el("a", { class: "reply", href: "#m-" + seq, "data-reply-to": seq, text: label });
    }

    function mentionsEl(ids) {
      const node = el("span", { class: "mentions" }, "mentions ");
      ids.forEach((id, i) => {
        if (i) node.append(", ");
        node.append(el("span", { class: "mention" + (me && id === me.id ? " me" : ""), text: "@" + memberName(id) }));
      });
      return node;
    }

    const ACK_STATUS = { seen: "seen", done: "done", blocked: "blocked", rejected: "rejected" };
    function acksEl(m) {
      const items = m.acks.map((a) => {
        const state = ACK_STATUS[a.status] || "waiting";
        const item = el(
          "li",
          { "data-agent-id": a.agentId },
          el("span", { class: "who", text: memberName(a.agentId) }),
          ": ",
          el("span", { class: "ack-status " + state, text: state })
        );
        if (a.answeredAt) item.append(" ", timeEl(a.answeredAt));
        if (a.note) item.append(" — ", el("span", { class: "note", text: String(a.note) }));
        return item;
      });
      return el(
        "div",
        { class: "acks" },
        el("span", { class: "acks-h", text: "Acknowledgements asked:" }),
        " ",
        el("ul", { "aria-label": "Acknowledgements of #" + m.seq }, ...items)
      );
    }

    function messageItem(m) {
      const meta = el(
        "div",
        { class: "meta" },
        el("span", { class: "sender", text: nameOf(m.senderId) }),
        " ",
        timeEl(m.createdAt),
        " ",
        el("span", { class: "seq", text: "#" + m.seq })
      );
      if (Number.isInteger(m.replyTo)) meta.append(" ", replyEl(m.replyTo));
      if (Array.isArray(m.mentions) && m.mentions.length) meta.append(" ", mentionsEl(m.mentions));
      const text = el("div", { class: "body", text: String(m.body) });
      const item = el("li", { "data-seq": m.seq, id: "m-" + m.seq, tabindex: "-1" }, meta, text);
      if (Array.isArray(m.acks) && m.acks.length) item.append(acksEl(m));
      return item;
    }

    function ackUpdate(a) {
      const m = shown.get(a.seq);
      if (!m || !Array.isArray(m.acks)) return; // not loaded: its history page will carry it
      const i = m.acks.findIndex((x) => x.agentId === a.agentId);
      if (i < 0) return;
      m.acks[i] = { agentId: a.agentId, status: a.status, note: a.note, answeredAt: a.answeredAt };
      const item = document.getElementById("m-" + a.seq);
      const old = item && item.querySelector(".acks");
      if (old) old.replaceWith(acksEl(m));
    }

    // A reply shown before the message it answers: a link once that message is loaded.
    function linkReplies(seq) {
      for (const span of list.querySelectorAll('span.reply[data-reply-to="' + seq + '"]')) span.replaceWith(replyEl(seq));
    }

    list.addEventListener("click", (ev) => {
      const link = ev.target.closest && ev.target.closest("a.reply");
      if (!link) return;
      const target = document.getElementById("m-" + link.dataset.replyTo);
      if (!target) return;
      ev.preventDefault();
      target.scrollIntoView({ block: "center" });
      target.focus({ preventScroll: true });
    });

    function atBottom() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    }

    function append(messages) {
      const stick = atBottom();
      for (const m of messages) {
        if (m.roomId !== roomId || seqs.has(m.seq)) continue;
        seqs.add(m.seq);
        shown.set(m.seq, m);
        const item = messageItem(m);
        // In seq order, whatever order pages and live events arrive in.
        let after = null;
        for (const li of list.children) {
          if (Number(li.dataset.seq) > m.seq) { after = li; break; }
        }
        list.insertBefore(item, after);
        linkReplies(m.seq);
        lastSeq = Math.max(lastSeq, m.seq);
        firstSeq = Math.min(firstSeq, m.seq);
      }
      if (stick) log.scrollTop = log.scrollHeight;
    }

    async function loadOlder() {
      if (loadingOlder || !nextCursor) return;
      loadingOlder = true;
      try {
        const page = await api("GET", "/api/v1/rooms/" + roomId + "/messages?limit=50&cursor=" + encodeURIComponent(nextCursor));
        await ensureNames(agentsOf(page.messages));
        const before = log.scrollHeight;
        append(page.messages);
        log.scrollTop += log.scrollHeight - before; // keep the reader where they were
        nextCursor = page.nextCursor;
        older.hidden = !nextCursor;
      } finally {
        loadingOlder = false;
      }
    }

    async function catchUp() {
      // The same catch-up as every agent: afterSeq until a short page.
      for (;;) {
        const page = await api("GET", "/api/v1/rooms/" + roomId + "/messages?limit=200&afterSeq=" + lastSeq);
        await ensureNames(agentsOf(page.messages));
        append(page.messages);
        if (page.messages.length < 200) return;
      }
    }

    const membersList = document.getElementById("members");
    async function showMembers() {
      const r = await api("GET", "/api/v1/rooms/" + roomId + "/members");
      members.clear();
      for (const a of r.members) members.set(a.id, a);
      membersList.replaceChildren(...r.members.map((a) => el("li", { text: a.name + " (" + a.displayName + ")" })));
    }
    await showMembers(); // before the messages: mentions and acknowledgements name members

    const first = await api("GET", "/api/v1/rooms/" + roomId + "/messages?limit=50");
    await ensureNames(agentsOf(first.messages));
    append(first.messages);
    nextCursor = first.nextCursor;
    older.hidden = !nextCursor;
    log.scrollTop = log.scrollHeight;
    older.addEventListener("click", () => loadOlder());
    log.addEventListener("scroll", () => {
      if (log.scrollTop < 60) loadOlder();
    });


    const presentList = document.getElementById("present");
    async function showPresent(ids) {
      await ensureNames(ids);
      const items = ids.map((id) => el("li", { text: nameOf(id) }));
      presentList.replaceChildren(...items);
      if (!items.length) presentList.append(el("li", { class: "help", text: member ? "nobody" : "visible to members only" }));
    }
    await showPresent([]);

    const socket = io(window.location.origin + "/agents", {
      auth: (cb) => cb({ token: jwt }),
      transports: ["websocket", "polling"],
    });
    renewListeners.push((token) => {
      if (socket.connected) socket.emit("session:renew", { token: token });
    });
    socket.on("connected", async () => {
      conn.textContent = "live";
      if (member) {
        socket.emit("room:join", { roomId: roomId }, (ack) => {
          if (ack && ack.ok) showPresent(ack.present);
        });
      }
      await catchUp();
    });
    socket.on("message:new", async (m) => {
      if (m.roomId !== roomId) return;
      await ensureNames(agentsOf([m]));
      if (m.seq > lastSeq + 1 && lastSeq > 0) await catchUp(); // a gap: fill it from history
      append([m]);
    });
    socket.on("ack:update", (a) => {
      if (a.roomId === roomId) ackUpdate(a);
    });
    socket.on("presence:update", (p) => {
      if (p.roomId === roomId) showPresent(p.present);
    });
    socket.on("room:added", () => showMembers());
    socket.on("room:removed", (r) => {
      if (r.roomId === roomId) conn.textContent = "you were removed from this room";
    });
    socket.on("session:ended", (e) => {
      if (e && e.reason === "revoked") signIn("revoked");
    });
    socket.on("disconnect", (reason) => {
      conn.textContent = "reconnecting…";
      if (reason === "io server disconnect") {
        // The server ended the session (expired): renew, then connect again and catch up.
        renew().then(() => socket.connect()).catch(() => {});
      }
    });
    socket.on("connect_error", (err) => {
      conn.textContent = "cannot connect (" + err.message + ")";
      if (err.message === "unauthorized") renew().then(() => socket.connect()).catch(() => {});
    });

    const composer = document.getElementById("composer");
    if (composer) {
      const box = document.getElementById("message");
      const sendStatus = document.getElementById("send-status");
      box.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) composer.requestSubmit();
      });
      composer.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const text = box.value;
        if (!text.trim()) return;
        const clientMsgId = "console-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
        sendStatus.textContent = "sending…";
        socket.timeout(10000).emit("message:send", { roomId: roomId, body: text, clientMsgId: clientMsgId }, (err, ack) => {
          if (err) { sendStatus.textContent = "not sent: no answer from the hub"; return; }
          if (!ack.ok) { sendStatus.textContent = "not sent: " + ack.error.message; return; }
          box.value = "";
          const ignored = Array.isArray(ack.message.ignoredMentions) ? ack.message.ignoredMentions : []; // the sender's answer only
          sendStatus.textContent =
            "sent as #" + ack.message.seq + (ignored.length ? "; not members, so not mentioned: " + ignored.map((n) => "@" + n).join(", ") : "");
          append([ack.message]);
        });
      });
    }
  }

  // ---- administration ----

  function cell(text) {
    return el("td", { text: text === null || text === undefined ? "—" : text });
  }
  function timeCell(iso) {
    return iso ? el("td", {}, timeEl(iso)) : cell("—");
  }

  async function fillAgentSelect(select) {
    const r = await loadNames();
    const current = select.value;
    select.replaceChildren(...[...r.values()].map((a) => el("option", { value: a.name, text: a.name })));
    if (current) select.value = current;
  }

  async function adminAgentsPage() {
    await renew();
    const table = document.getElementById("agents");
    async function showAgents() {
      await loadNames();
      table.replaceChildren(
        ...[...names.values()].map((a) =>
          el("tr", {}, el("th", { scope: "row", text: a.name }), cell(a.displayName), cell(a.role), timeCell(a.createdAt))
        )
      );
      await fillAgentSelect(document.getElementById("token-agent"));
    }
    await showAgents();

    document.getElementById("create-agent").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ev.target;
      try {
        const a = await api("POST", "/api/v1/agents", {
          name: f.elements.name.value.trim(),
          displayName: f.elements.displayName.value.trim(),
          role: f.elements.role.value,
        });
        f.reset();
        await showAgents();
        status("Agent " + a.name + " created.");
      } catch (e) {
        status(e.message, true);
      }
    });

    const pick = document.getElementById("pick-agent");
    const tokens = document.getElementById("tokens");
    const caption = document.getElementById("tokens-caption");
    async function showTokens() {
      const agent = pick.elements.agent.value;
      if (!agent) return;
      const r = await api("GET", "/api/v1/agents/" + encodeURIComponent(agent) + "/tokens");
      caption.textContent = "Tokens of " + agent;
      tokens.replaceChildren(
        ...r.tokens.map((t) => {
          const state = t.revokedAt
            ? cell("revoked")
            : el("td", {}, el("button", { type: "button", "data-prefix": t.prefix, "aria-label": "Revoke " + t.prefix, text: "Revoke" }));
          return el("tr", {}, el("th", { scope: "row", text: t.prefix }), timeCell(t.createdAt), timeCell(t.lastUsedAt), timeCell(t.expiresAt), state);
        })
      );
    }
    pick.addEventListener("submit", (ev) => {
      ev.preventDefault();
      showTokens().catch((e) => status(e.message, true));
    });
    tokens.addEventListener("click", async (ev) => {
      const prefix = ev.target.getAttribute && ev.target.getAttribute("data-prefix");
      if (!prefix) return;
      try {
        await api("DELETE", "/api/v1/tokens/" + encodeURIComponent(prefix));
        status("Token " + prefix + " revoked.");
        await showTokens();
      } catch (e) {
        status(e.message, true);
      }
    });
    const issued = document.getElementById("issued");
    const issuedToken = document.getElementById("issued-token");
    document.getElementById("issue").addEventListener("click", async () => {
      const agent = pick.elements.agent.value;
      try {
        const t = await api("POST", "/api/v1/agents/" + encodeURIComponent(agent) + "/tokens", {});
        document.getElementById("issued-for").textContent = agent;
        issuedToken.value = t.token;
        issued.hidden = false;
        issuedToken.focus();
        issuedToken.select();
        status("Token " + t.prefix + " issued for " + agent + ". Copy it now: it is not shown again.");
        await showTokens();
      } catch (e) {
        status(e.message, true);
      }
    });
    document.getElementById("copy").addEventListener("click", async () => {
      issuedToken.select();
      try {
        await navigator.clipboard.writeText(issuedToken.value);
        status("Token copied.");
      } catch (e) {
        status("Copying needs permission: the token is selected, press Ctrl+C.", true);
      }
    });
  }

  async function adminRoomsPage() {
    await renew();
    const pick = document.getElementById("pick-room");
    const select = pick.elements.room;
    const rooms = (await api("GET", "/api/v1/rooms?all=true")).rooms;
    select.replaceChildren(...rooms.map((r) => el("option", { value: r.id, text: r.name + " (" + r.slug + ")" })));
    await fillAgentSelect(document.getElementById("member-agent"));
    const list = document.getElementById("room-members");
    async function showMembers() {
      if (!select.value) return;
      const r = await api("GET", "/api/v1/rooms/" + select.value + "/members");
      list.replaceChildren(
        ...r.members.map((a) =>
          el("li", {}, a.name + " ", el("button", { type: "button", "data-agent": a.name, "aria-label": "Remove " + a.name, text: "Remove" }))
        )
      );
    }
    pick.addEventListener("submit", (ev) => {
      ev.preventDefault();
      showMembers().catch((e) => status(e.message, true));
    });
    list.addEventListener("click", async (ev) => {
      const agent = ev.target.getAttribute && ev.target.getAttribute("data-agent");
      if (!agent) return;
      try {
        await api("DELETE", "/api/v1/rooms/" + select.value + "/members/" + encodeURIComponent(agent));
        status(agent + " removed.");
        await showMembers();
      } catch (e) {
        status(e.message, true);
      }
    });
    document.getElementById("add-member").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const agent = ev.target.elements.agent.value;
      try {
        await api("POST", "/api/v1/rooms/" + select.value + "/members", { agent: agent });
        status(agent + " is a member.");
        await showMembers();
      } catch (e) {
        status(e.message, true);
      }
    });
    await showMembers();
  }

  async function adminAuditPage() {
    await renew();
    await loadNames();
    const form = document.getElementById("audit-filter");
    const table = document.getElementById("audit");
    const more = document.getElementById("audit-more");
    let cursor = null;
    async function load(reset) {
      const q = new URLSearchParams({ limit: "50" });
      const type = form.elements.type.value.trim();
      const agent = form.elements.agent.value.trim();
      if (type) q.set("type", type);
      if (agent) q.set("agent", agent);
      if (!reset && cursor) q.set("cursor", cursor);
      const r = await api("GET", "/api/v1/audit-events?" + q.toString());
      const rows = r.events.map((ev) =>
        el("tr", {}, timeCell(ev.createdAt), el("th", { scope: "row", text: ev.type }), cell(ev.agentId ? nameOf(ev.agentId) : "operator (CLI)"), el("td", {}, el("code", { text: JSON.stringify(ev.payload) })))
      );
      if (reset) table.replaceChildren(...rows);
      else table.append(...rows);
      cursor = r.nextCursor;
      more.hidden = !cursor;
    }
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      load(true).catch((e) => status(e.message, true));
    });
    more.addEventListener("click", () => load(false).catch((e) => status(e.message, true)));
    await load(true);
  }

  const pages = {
    room: roomPage,
    "admin-agents": adminAgentsPage,
    "admin-rooms": adminRoomsPage,
    "admin-audit": adminAuditPage,
  };
  const run = pages[body.dataset.page];
  if (run) {
    run().catch((e) => {
      if (e && e.message !== "signed out") status(e.message || String(e), true);
      const conn = document.getElementById("conn");
      if (conn && e && e.message !== "signed out") conn.textContent = "error: " + (e.message || e);
    });
  }
})();
