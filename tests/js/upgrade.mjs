// Usage: node upgrade.mjs BASE_URL JWT ROOM_ID
// The official socket.io-client with its default transports (long-polling, then the upgrade to
// websocket): waits for `connected` and the upgrade, sends one message with an ack over the
// upgraded transport, waits for its message:new, and prints one JSON line with what it saw.
import { io } from 'socket.io-client';

const [baseUrl, token, roomId] = process.argv.slice(2);
const out = { connected: null, transports: [], ack: null, messageNew: null };
const fail = (why) => { console.log(JSON.stringify({ ...out, error: String(why) })); process.exit(1); };
setTimeout(() => fail('timeout'), 15000).unref();

const socket = io(`${baseUrl}/agents`, { auth: { token }, reconnection: false });
socket.on('connect_error', (err) => fail(`connect_error: ${err.message}`));
const engine = socket.io.engine ?? await new Promise((resolve) => socket.io.once('open', () => resolve(socket.io.engine)));
out.transports.push(engine.transport.name);
const upgraded = new Promise((resolve) => engine.once('upgrade', (t) => resolve(t.name)));
out.connected = await new Promise((resolve) => socket.on('connected', resolve));
out.transports.push(await upgraded);
const gotNew = new Promise((resolve) => socket.on('message:new', resolve));
out.ack = await socket.timeout(10000).emitWithAck('message:send', { roomId, body: 'after the upgrade' });
out.messageNew = await gotNew;
socket.close();
console.log(JSON.stringify(out));
process.exit(0);
