// One load-generator process on the official socket.io-client, driven by bench/jsgen.py.
//
// Reads one JSON job from stdin's first line, speaks a line protocol on stdout, and does what
// bench/loadgen.py's worker processes do, with the same Plan vocabulary and the same result shape
// (so bench/loadgen.py's summarize() judges both generators alike):
//
//   job {"mode":"messages","url":..,"plan":{rooms,agents,messages,window,rate},"agents":[{index,agent_id,room_id,jwt}]}
//     -> "READY" once every socket is connected; waits for "GO" on stdin; "P <acked> <delivered>"
//        every 250 ms; "R <json WorkerResult>" at the end.
//   job {"mode":"connections","url":..,"jwts":[..],"first":F,"count":N,"concurrency":50}
//     (socket F + i opens with jwts[(F + i) % jwts.length]: each agent's sockets spread out)
//     -> "C <json {connect_times, failures}>" once all are open; waits for "RELEASE"; closes; exits.
//
// Times are wall-clock seconds (performance.timeOrigin + performance.now(), sub-millisecond), as
// the send timestamp travels in the message body to receivers in other processes.
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';

const IDLE_LIMIT_MS = 10000; // give up waiting for deliveries after this long without any
const BODY_PAD = 'x'.repeat(48); // ~64-byte messages, as bench/loadgen.py
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Resolves once written: stdout to a pipe is asynchronous, and process.exit would cut a long line.
const emit = (line) => new Promise((resolve) => process.stdout.write(line + '\n', resolve));

const lines = createInterface({ input: process.stdin });
const waiters = [];
const queued = [];
let closed = false;
lines.on('line', (line) => (waiters.length ? waiters.shift()(line) : queued.push(line)));
lines.on('close', () => {
  closed = true;
  while (waiters.length) waiters.shift()('');
});
const nextLine = () =>
  new Promise((resolve) => (queued.length ? resolve(queued.shift()) : closed ? resolve('') : waiters.push(resolve)));

function open(url, token) {
  // forceNew: one Engine.IO connection per socket, as separate agents have (io() would share one).
  const socket = io(`${url}/agents`, {
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 60000,
  });
  return new Promise((resolve, reject) => {
    socket.once('connected', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function messages(job) {
  const { plan, agents, url } = job;
  const expected = plan.agents * plan.messages; // per room, when every send is acked
  const result = {
    ack_latencies: [], delivery_latencies: [], acked_by_room: {}, failed: {}, receivers: [],
    seqs_by_room: {}, send_started: 0, send_finished: 0, cpu_seconds: 0,
  };
  const fail = (code) => (result.failed[code] = (result.failed[code] || 0) + 1);
  const receivers = agents.map((a) => ({ room: a.room_id, seqs: [], lat: [] }));
  const sockets = await Promise.all(
    agents.map(async (a, i) => {
      const socket = await open(url, a.jwt);
      const state = receivers[i];
      socket.on('message:new', (m) => {
        const t = now();
        state.seqs.push(m.seq);
        state.lat.push(t - parseFloat(m.body));
      });
      return socket;
    }),
  );
  emit('READY');
  if ((await nextLine()) !== 'GO') process.exit(2);

  let acked = 0;
  const delivered = () => receivers.reduce((n, s) => n + s.seqs.length, 0);
  const progress = setInterval(() => emit(`P ${acked} ${delivered()}`), 250);

  async function sendAll(agent, socket) {
    let inflight = 0;
    let freed = null; // resolves when an ack frees a window slot
    const pending = [];
    // Agents keep their own phase (spread evenly over one send interval), as separate agents
    // do: started together they would send in bursts of every agent at once. As bench/loadgen.py.
    const total = Math.max(1, plan.rooms * plan.agents);
    const started = performance.now() + (plan.rate > 0 ? ((agent.index % total) / total) * (1000 / plan.rate) : 0);
    for (let n = 0; n < plan.messages; n++) {
      while (inflight >= plan.window) await new Promise((resolve) => (freed = resolve));
      if (plan.rate > 0) {
        const delay = started + (n * 1000) / plan.rate - performance.now();
        if (delay > 0) await sleep(delay);
      }
      const sent = now();
      const body = `${sent.toFixed(6)} ${BODY_PAD}`;
      inflight++;
      const ack = socket
        .timeout(120000)
        .emitWithAck('message:send', { roomId: agent.room_id, body, clientMsgId: `${agent.index}-${n}` })
        .then(
          (reply) => {
            if (reply && reply.ok) {
              result.ack_latencies.push(now() - sent);
              result.acked_by_room[agent.room_id] = (result.acked_by_room[agent.room_id] || 0) + 1;
              acked++;
            } else fail(reply && reply.error ? reply.error.code : 'no-reply');
          },
          () => fail('disconnected'),
        )
        .finally(() => {
          inflight--;
          if (freed) {
            const f = freed;
            freed = null;
            f();
          }
        });
      pending.push(ack);
    }
    await Promise.all(pending);
  }

  const cpuAtGo = process.cpuUsage();
  result.send_started = now();
  await Promise.all(agents.map((a, i) => sendAll(a, sockets[i])));
  result.send_finished = now();

  // Deliveries may trail the last ack a little; wait until complete or idle.
  let lastCount = -1;
  let lastChange = performance.now();
  for (;;) {
    const count = delivered();
    if (receivers.every((s) => s.seqs.length >= expected)) break;
    if (count !== lastCount) [lastCount, lastChange] = [count, performance.now()];
    else if (performance.now() - lastChange > IDLE_LIMIT_MS) break;
    await sleep(50);
  }
  clearInterval(progress);
  for (const s of receivers) {
    let inOrder = true;
    for (let k = 1; k < s.seqs.length; k++) if (s.seqs[k] !== s.seqs[k - 1] + 1) inOrder = false;
    const dupes = s.seqs.length - new Set(s.seqs).size;
    const [first, last] = s.seqs.length ? [s.seqs[0], s.seqs[s.seqs.length - 1]] : [0, 0];
    result.receivers.push([s.room, s.seqs.length, inOrder, dupes, first, last]);
    for (const x of s.lat) result.delivery_latencies.push(x);
  }
  const cpu = process.cpuUsage(cpuAtGo);
  result.cpu_seconds = (cpu.user + cpu.system) / 1e6;
  emit(`P ${acked} ${delivered()}`);
  await emit('R ' + JSON.stringify(result));
  for (const s of sockets) s.close();
}

async function connections(job) {
  const times = [];
  let failures = 0;
  const sockets = [];
  let next = 0;
  async function lane() {
    while (next < job.count) {
      const jwt = job.jwts[(job.first + next) % job.jwts.length];
      next++;
      const t = performance.now();
      try {
        sockets.push(await open(job.url, jwt));
        times.push((performance.now() - t) / 1000);
      } catch {
        failures++;
      }
    }
  }
  await Promise.all(Array.from({ length: job.concurrency || 50 }, lane));
  await emit('C ' + JSON.stringify({ connect_times: times, failures }));
  await nextLine(); // RELEASE (or stdin closed)
  for (const s of sockets) s.close();
}

const job = JSON.parse(await nextLine());
await (job.mode === 'messages' ? messages(job) : connections(job));
process.exit(0);
