// Drives the hub's /mcp endpoint with the official MCP TypeScript SDK (Streamable HTTP), as
// Claude Code and other Node MCP clients do. Usage: node mcp_http.mjs BASE_URL ALICE_TOKEN
// BOB_TOKEN ROOM. Prints one JSON line of what it saw; tests/mcp/test_js_client.py checks it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [base, aliceToken, bobToken, room] = process.argv.slice(2);

async function connect(token, name) {
  const client = new Client({ name, version: "0.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

const seen = {};
const alice = await connect(aliceToken, "alice");
const bob = await connect(bobToken, "bob");
try {
  seen.sessionId = Boolean(alice.transport.sessionId);
  seen.tools = (await alice.client.listTools()).tools.map((t) => t.name);
  seen.outputSchemas = (await alice.client.listTools()).tools.every((t) => t.outputSchema);

  // Two agents converse: Bob listens, Alice asks, Bob's wait returns her question.
  const start = (await bob.client.callTool({ name: "read_messages", arguments: { room } }))
    .structuredContent.lastSeq;
  const listening = bob.client.callTool({
    name: "wait_for_messages",
    arguments: { room, after_seq: start, timeout_seconds: 30 },
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const asked = await alice.client.callTool({
    name: "send_message",
    arguments: { room, body: "hello from the TypeScript SDK" },
  });
  seen.asked = asked.structuredContent;
  seen.heard = (await listening).structuredContent;

  // A wait longer than the client's request timeout lives on because the hub sends progress
  // and the client resets its timeout on each (resetTimeoutOnProgress)...
  let progress = 0;
  const kept = await alice.client.callTool(
    { name: "wait_for_messages", arguments: { room, after_seq: asked.structuredContent.seq, timeout_seconds: 14 } },
    undefined,
    { timeout: 7000, resetTimeoutOnProgress: true, onprogress: () => { progress += 1; } },
  );
  seen.kept = { result: kept.structuredContent, progress };

  // ...and without it the same wait is cut at the timeout, as most clients cut it at 60 s.
  try {
    await alice.client.callTool(
      { name: "wait_for_messages", arguments: { room, after_seq: asked.structuredContent.seq, timeout_seconds: 14 } },
      undefined,
      { timeout: 7000 },
    );
    seen.cut = "not cut";
  } catch (error) {
    seen.cut = String(error.message || error);
  }

  // A refused argument comes back as a tool error a model can act on.
  const bad = await alice.client.callTool({ name: "read_messages", arguments: { room, limit: 1000 } });
  seen.badArgument = { isError: bad.isError, text: bad.content.map((c) => c.text).join(" ") };
} finally {
  await alice.transport.terminateSession().catch(() => {});
  await bob.transport.terminateSession().catch(() => {});
  await alice.client.close();
  await bob.client.close();
}
console.log(JSON.stringify(seen));
