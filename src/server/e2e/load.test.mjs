// A bounded load on loopback: after a warm-up, 300 requests at concurrency 12 against
// 4 slots and a queue of 4 — every answer is 200 or 503 with Retry-After, anonymous
// memory (RssAnon) stays within 10 % of the warm-up's — then 500 hostile requests
// (malformed, huge, truncated, invalid UTF-8, deeply nested, absurd numbers,
// disconnects, garbage), after which the server still answers correctly and its
// anonymous memory stopped growing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { startServer, postJson, FIXTURES } from './serve_process.mjs';

const STORIES = join(FIXTURES, 'models', 'stories260K.gguf');
const STARTS = ['Once upon a time', 'Lily liked', 'The dog', 'One day, Tom', 'Sam had a big', 'The sun', 'Mia saw', 'A little bird'];

// Runs `count` jobs with at most `width` at a time.
async function pool(count, width, job) {
  let next = 0;
  const workers = Array.from({ length: width }, async () => {
    while (next < count) {
      const i = next;
      next += 1;
      await job(i);
    }
  });
  await Promise.all(workers);
}

function requestFor(i) {
  const chat = i % 2 === 0;
  const body = chat
    ? { messages: [{ role: 'user', content: STARTS[i % STARTS.length] }] }
    : { prompt: STARTS[i % STARTS.length] };
  body.max_tokens = 20 + (i % 5) * 10;
  if (i % 4 === 0) body.temperature = 0; else body.seed = i;
  if (i % 3 === 0) body.stream = true;
  return { path: chat ? '/v1/chat/completions' : '/v1/completions', body };
}

// One raw exchange: sends `bytes` (optionally only part of them, then closes), returns
// the status line's code, or 0 when the server closed without answering.
function raw(port, bytes, { closeAfterSend = false, readFirstBytes = false } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    const finish = (status) => { socket.destroy(); resolve(status); };
    socket.setTimeout(5000, () => finish(-1));
    socket.on('error', () => finish(received ? Number(received.slice(9, 12)) || 0 : 0));
    socket.on('data', (data) => {
      received += data.toString('latin1');
      if (readFirstBytes) return finish(Number(received.slice(9, 12)));
      if (received.includes('\r\n\r\n')) {
        const lengthMatch = /content-length: (\d+)/i.exec(received);
        const headerEnd = received.indexOf('\r\n\r\n') + 4;
        if (!lengthMatch || received.length - headerEnd >= Number(lengthMatch[1])) finish(Number(received.slice(9, 12)));
      }
    });
    socket.on('close', () => finish(received ? Number(received.slice(9, 12)) || 0 : 0));
    socket.write(bytes, () => { if (closeAfterSend) finish(0); });
  });
}

function post(path, body, extraHeaders = '') {
  const payload = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([
    Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
                `Content-Length: ${payload.length}\r\n${extraHeaders}Connection: close\r\n\r\n`),
    payload,
  ]);
}

const HOSTILE = [
  { name: 'malformed JSON', send: () => post('/v1/chat/completions', '{"messages": [{"role": "user",'), expect: [400] },
  { name: 'not an object', send: () => post('/v1/completions', '[1, 2, 3]'), expect: [400] },
  {
    name: 'huge body', expect: [413, 0],
    send: () => Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
                            'Content-Length: 50000000\r\n\r\n{"messages": ['),
  },
  {
    name: 'truncated body', expect: [0], options: { closeAfterSend: true },
    send: () => Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"mess'),
  },
  {
    name: 'invalid UTF-8', expect: [400],
    send: () => post('/v1/chat/completions', Buffer.concat([
      Buffer.from('{"messages": [{"role": "user", "content": "'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('"}]}')])),
  },
  { name: 'deeply nested', send: () => post('/v1/chat/completions', '['.repeat(100000)), expect: [400] },
  {
    name: 'absurd numbers', expect: [400],
    send: () => post('/v1/chat/completions',
      '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e308, "temperature": -1e999, "seed": 1e400}'),
  },
  {
    name: 'huge max_tokens', expect: [400],
    send: () => post('/v1/completions', JSON.stringify({ prompt: 'x', max_tokens: 2 ** 53 })),
  },
  {
    name: 'disconnect mid-stream', expect: [200], options: { readFirstBytes: true },
    send: () => post('/v1/completions', JSON.stringify({ prompt: 'Once upon a time', stream: true, max_tokens: 200 })),
  },
  { name: 'garbage', send: () => Buffer.from([0, 1, 2, 255, 13, 10, 13, 10]), expect: [400, 0] },
  {
    name: 'huge header', expect: [400, 431, 0],
    send: () => Buffer.from(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100000)}\r\n\r\n`),
  },
  { name: 'unknown method', send: () => Buffer.from('BREW /v1/models HTTP/1.1\r\nHost: x\r\n\r\n'), expect: [400, 404, 405] },
  { name: 'empty body', send: () => post('/v1/chat/completions', ''), expect: [400] },
  {
    name: 'wrong types', expect: [400],
    send: () => post('/v1/chat/completions', '{"messages": [{"role": 7, "content": {"a": [null]}}], "stop": {"x": 1}}'),
  },
  { name: 'header only', send: () => Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost'), expect: [0], options: { closeAfterSend: true } },
];

test('load, then hostile requests, then a correct answer', { timeout: 400000 }, async () => {
  const server = await startServer([
    '-m', STORIES, '--parallel', '4', '--queue', '4', '--cache-mb', '1', '--read-timeout', '2', '--http-threads', '16',
  ], { name: 'load' });
  const reference = JSON.parse((await postJson(`${server.url}/v1/completions`,
    { prompt: 'Once upon a time', max_tokens: 40, temperature: 0 })).text).choices[0].text;

  const statuses = new Map();
  const bad = [];
  let answered = 0;
  const send = async (i) => {
    const { path, body } = requestFor(i);
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      signal: AbortSignal.timeout(60000),
    });
    const text = await response.text();
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    if (response.status === 200) {
      if (body.stream && !text.endsWith('data: [DONE]\n\n')) bad.push(`${i}: stream without [DONE]`);
    } else if (response.status === 503) {
      if (response.headers.get('retry-after') !== '1') bad.push(`${i}: 503 without Retry-After`);
      if (JSON.parse(text).error.code !== 'server_busy') bad.push(`${i}: 503 ${text}`);
      await new Promise((r) => setTimeout(r, 50)); // a client backing off (Retry-After, shortened)
    } else {
      bad.push(`${i}: status ${response.status} ${text}`);
    }
    answered += 1;
    if (answered % 50 === 0) console.log(`load: ${answered} answered`);
  };
  // Warm-up, the same mix, until 60 answers were generated (the 1 MB prefix cache is
  // full by then, and every slot has served long answers).
  for (let round = 0; round < 20 && (statuses.get(200) ?? 0) < 60; round += 1) {
    await pool(48, 12, (i) => send(1000 + 48 * round + i));
  }
  assert.ok((statuses.get(200) ?? 0) >= 60, `the warm-up got only ${statuses.get(200) ?? 0} answers`);
  const warm = await server.metric('koto_process_resident_anonymous_bytes');
  statuses.clear();
  await pool(300, 12, send);
  const afterLoad = await server.metric('koto_process_resident_anonymous_bytes');
  console.log(`load: statuses ${JSON.stringify([...statuses])}, RssAnon after warm-up ${warm}, after 300 more ${afterLoad}`);
  assert.deepEqual(bad, []);
  assert.ok(afterLoad <= warm * 1.10, `RssAnon grew from ${warm} to ${afterLoad}`);

  // Two rounds of 250: the first warms up what hostile requests touch (buffers for 100 KB
  // bodies, the streaming path), the second must not grow anonymous memory further.
  const unexpected = [];
  const hostileRound = () => pool(250, 20, async (i) => {
    const kind = HOSTILE[i % HOSTILE.length];
    const status = await raw(server.port, kind.send(), kind.options);
    if (!kind.expect.includes(status)) unexpected.push(`${kind.name}: ${status}`);
  });
  await hostileRound();
  console.log('hostile: 250 sent');
  const afterFirstRound = await server.metric('koto_process_resident_anonymous_bytes');
  await hostileRound();
  assert.deepEqual([...new Set(unexpected)], []);

  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  const again = JSON.parse((await postJson(`${server.url}/v1/completions`,
    { prompt: 'Once upon a time', max_tokens: 40, temperature: 0 })).text);
  assert.equal(again.choices[0].text, reference);
  let active = 1;
  for (let i = 0; i < 100 && active !== 0; i += 1) {
    active = await server.metric('koto_slots_active');
    if (active !== 0) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(active, 0, 'every hostile request let go of its slot');
  const afterHostile = await server.metric('koto_process_resident_anonymous_bytes');
  console.log(`hostile: RssAnon after 250 ${afterFirstRound}, after 500 ${afterHostile}`);
  assert.ok(afterHostile <= afterFirstRound * 1.10, `RssAnon grew from ${afterFirstRound} to ${afterHostile}`);
  const exit = await server.stop();
  assert.equal(exit.code, 0);
});
