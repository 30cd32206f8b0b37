// Usage: node smoke.mjs BASE_URL JWT ROOM_ID TRANSPORT
// Connects with the official socket.io-client, sends one message with an ack, waits for its
// message:new, and prints one JSON line with what it saw. Exits non-zero on any failure.
import { io } from 'socket.io-client';

const [baseUrl, token, roomId, transport = 'websocket'] = process.argv.slice(2);
const out = { connected: null, ack: null, messageNew: null, refused: null };
const fail = (why) => { console.log(JSON.stringify({ ...out, error: String(why) })); process.exit(1); };
setTimeout(() => fail('timeout'), 15000).unref();

// A refused handshake first: the contract's connect_error message.
const bad = io(`${baseUrl}/agents`, { auth: { token: 'not-a-jwt' }, transports: [transport], reconnection: false });
out.refused = await new Promise((resolve) => bad.on('connect_error', (err) => resolve(err.message)));
bad.close();

const socket = io(`${baseUrl}/agents`, { auth: { token }, transports: [transport], reconnection: false });
socket.on('connect_error', (err) => fail(`connect_error: ${err.message}`));
out.connected = await new Promise((resolve) => socket.on('connected', resolve));
const gotNew = new Promise((resolve) => socket.on('message:new', resolve));
out.ack = await socket.timeout(10000).emitWithAck('message:send', { roomId, body: `hello from JS over ${transport}`, clientMsgId: `js-${transport}` });
out.messageNew = await gotNew;
socket.close();
console.log(JSON.stringify(out));
process.exit(0);
