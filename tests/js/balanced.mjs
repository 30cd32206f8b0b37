// Usage: node balanced.mjs CONFIG_JSON
//   CONFIG_JSON: {"url", "transport", "room", "messages",
//                 "sender": {"jwt", "address"}, "receivers": [{"jwt", "address"}, ...]}
// Opens every socket through the load balancer with the official socket.io-client, each from its
// own loopback address (so nginx's `hash $remote_addr` places it), prints {"ready", "sids"} and
// waits for a line on stdin; then the sender sends `messages` messages one after the other, each
// waiting for its ack, and the receivers collect message:new. Prints one JSON line with what each
// socket saw. Exits non-zero only on a failure of the script itself: the test judges the rest.
import http from 'node:http';
import readline from 'node:readline';
import { io } from 'socket.io-client';

const config = JSON.parse(process.argv[2]);
const fail = (why) => { console.log(JSON.stringify({ error: String(why) })); process.exit(1); };
setTimeout(() => fail('timeout'), 60000).unref();

function open({ jwt, address }) {
  const agent = new http.Agent({ localAddress: address, keepAlive: true });
  // "default": the client's own choice, long-polling first, then the upgrade to websocket.
  const transports = config.transport === 'default' ? {} : { transports: [config.transport], upgrade: false };
  const socket = io(`${config.url}/agents`, {
    auth: { token: jwt },
    ...transports,
    reconnection: false,
    agent,
    localAddress: address,
  });
  const seen = { address, sid: null, received: [], disconnects: [], errors: [] };
  socket.on('message:new', (m) => seen.received.push(m.seq));
  socket.on('disconnect', (reason) => seen.disconnects.push(reason));
  socket.on('connect_error', (err) => seen.errors.push(err.message));
  const connected = new Promise((resolve, reject) => {
    socket.on('connected', () => { seen.sid = socket.io.engine.id; resolve(); });
    socket.on('connect_error', (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
  return { socket, seen, connected };
}

const sender = open(config.sender);
const receivers = config.receivers.map(open);
const all = [sender, ...receivers];
try {
  await Promise.all(all.map((s) => s.connected));
} catch (err) {
  fail(err.message);
}
console.log(JSON.stringify({ ready: true, sids: all.map((s) => s.seen.sid) }));
const lines = readline.createInterface({ input: process.stdin });
await new Promise((resolve) => lines.once('line', resolve));
lines.close();

const acks = [];
for (let n = 0; n < config.messages; n++) {
  try {
    const ack = await sender.socket.timeout(10000).emitWithAck('message:send', {
      roomId: config.room, body: `through the balancer ${n}`, clientMsgId: `lb-${config.transport}-${n}`,
    });
    acks.push(ack.ok ? ack.message.seq : ack.error.code);
    if (config.transport === 'default' && n === 0) {
      // Let every socket finish its upgrade before the rest are sent (bounded by the timeout).
      while (all.some((s) => s.socket.io.engine.transport.name !== 'websocket')) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (err) {
    acks.push(`no ack: ${err.message}`);
  }
}
const want = acks.filter((a) => typeof a === 'number').length;
const deadline = Date.now() + 20000;
while (Date.now() < deadline && receivers.some((r) => r.seen.received.length < want)) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const report = (s) => ({
  ...s.seen,
  sidNow: s.socket.io.engine ? s.socket.io.engine.id : null,
  transportNow: s.socket.io.engine ? s.socket.io.engine.transport.name : null,
  connectedNow: s.socket.connected,
});
// A copy taken before closing: close() itself records a disconnect.
const out = JSON.parse(JSON.stringify({ acks, sender: report(sender), receivers: receivers.map(report) }));
all.forEach((s) => s.socket.close());
console.log(JSON.stringify(out));
process.exit(0);
