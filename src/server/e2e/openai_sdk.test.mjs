// The official `openai` npm client against `koto serve`: create (streaming and not),
// the strict stream helper, completions, models, errors as the SDK's error classes,
// API keys, a cancelled stream, and a clean exit on SIGTERM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import http from 'node:http';
import { startServer, openaiModule, MODELS_DIR, tempDir, writeFile, sleep } from './serve_process.mjs';

const { OpenAI } = openaiModule();
const CHAIN = join(MODELS_DIR, 'chain.gguf');
const SLOW_CHAIN = join(MODELS_DIR, 'slow-chain.gguf'); // the same answer, a few ms per token
const ANSWER = 'の大日生語長'; // what the chain model says, one byte token at a time

function answerChars(n) {
  const chars = [...ANSWER];
  return Array.from({ length: n }, (_, i) => chars[i % chars.length]).join('');
}

let server;
let client;

before(async () => {
  server = await startServer(['-m', SLOW_CHAIN, '--alias', 'chain', '--parallel', '2'], { name: 'sdk' });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed-on-loopback', maxRetries: 0 });
});

after(async () => {
  const exit = await server.stop('SIGTERM');
  assert.equal(exit.code, 0, server.log());
  assert.match(server.log(), /stopped/);
});

test('the weights are read into memory before the server says ready', () => {
  const log = server.log();
  const weights = log.search(/weights in memory: [0-9.]+ (bytes|KiB|MiB|GiB) in [0-9.]+ s\n/);
  assert.ok(weights >= 0, log);
  assert.ok(weights < log.indexOf('ready: chain'), log);
});

test('chat.completions.create without streaming', async () => {
  const completion = await client.chat.completions.create({
    model: 'chain',
    messages: [{ role: 'system', content: '丁寧に答えてください。' }, { role: 'user', content: '日本語で自己紹介してください。' }],
    max_tokens: 30,
    temperature: 0,
  });
  assert.equal(completion.object, 'chat.completion');
  assert.match(completion.id, /^chatcmpl-/);
  assert.equal(completion.model, 'chain');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, answerChars(10));
  assert.equal(completion.choices[0].finish_reason, 'length');
  assert.equal(completion.usage.completion_tokens, 30);
  assert.ok(completion.usage.prompt_tokens > 20);
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + 30);
  assert.equal(typeof completion.usage.prompt_tokens_details.cached_tokens, 'number');
  assert.equal(completion.timings.characters, 10);
});

test('chat.completions.create with stream: whole characters in every chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'chain',
    messages: [{ role: 'user', content: '日本の首都はどこですか？' }],
    max_tokens: 21,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finishes = 0;
  let sawRole = false;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(usage, null, 'the usage chunk comes last');
    if (chunk.choices.length === 0) {
      usage = chunk.usage;
      continue;
    }
    const choice = chunk.choices[0];
    if (choice.delta.role) sawRole = true;
    if (choice.finish_reason !== null) finishes += 1;
    const piece = choice.delta.content ?? '';
    assert.ok(!piece.includes('\uFFFD'), `U+FFFD in a chunk: ${JSON.stringify(piece)}`);
    assert.ok([...piece].length <= 1, `one character per token group: ${JSON.stringify(piece)}`);
    text += piece;
  }
  assert.ok(sawRole);
  assert.equal(finishes, 1);
  assert.equal(text, answerChars(7));
  assert.equal(usage.completion_tokens, 21);
});

test('the strict stream helper accepts the stream', async () => {
  const stream = client.chat.completions.stream({
    model: 'chain',
    messages: [{ role: 'user', content: 'こんにちは' }],
    max_tokens: 12,
    temperature: 0,
    stream_options: { include_usage: true },
  });
  const pieces = [];
  stream.on('content', (delta) => pieces.push(delta));
  const final = await stream.finalChatCompletion();
  assert.equal(final.choices[0].message.content, answerChars(4));
  assert.equal(final.choices[0].finish_reason, 'length');
  assert.equal(pieces.join(''), answerChars(4));
  assert.equal(final.usage.completion_tokens, 12);
});

test('completions, models and a repeated prompt served from the cache', async () => {
  const prompt = '昔々、ある村に'.repeat(20);
  const first = await client.completions.create({ model: 'chain', prompt, max_tokens: 9, temperature: 0 });
  assert.equal(first.object, 'text_completion');
  assert.equal(first.choices[0].text, answerChars(3));
  const again = await client.completions.create({ model: 'chain', prompt, max_tokens: 9, temperature: 0 });
  assert.equal(again.choices[0].text, first.choices[0].text);
  assert.equal(again.usage.prompt_tokens_details.cached_tokens, again.usage.prompt_tokens - 1);

  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['chain']);
});

test('embeddings.create: base64 by default in the SDK, floats when asked, the same vector', async () => {
  const input = ['経費精算の締め日', '交通費は実費'];
  const viaSdk = await client.embeddings.create({ model: 'chain', input });
  assert.equal(viaSdk.object, 'list');
  assert.equal(viaSdk.data.length, 2);
  assert.equal(viaSdk.data[1].index, 1);
  const floats = await client.embeddings.create({ model: 'chain', input, encoding_format: 'float' });
  for (const i of [0, 1]) {
    const a = viaSdk.data[i].embedding;
    const b = floats.data[i].embedding;
    assert.equal(a.length, b.length);
    assert.ok(a.length > 0);
    let norm = 0;
    for (let j = 0; j < a.length; j++) {
      assert.ok(Math.abs(a[j] - b[j]) < 1e-6, `dimension ${j}: ${a[j]} vs ${b[j]}`);
      norm += a[j] * a[j];
    }
    assert.ok(Math.abs(norm - 1) < 1e-4, `not unit length: ${norm}`);
  }
  assert.ok(viaSdk.usage.prompt_tokens > 0);
});

test('errors arrive as the SDK error classes, in Japanese when asked', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'chain', messages: [{ role: 'user', content: 'x' }], n: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'n' && e.code === 'unsupported_parameter',
  );
  const japanese = new OpenAI({
    baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0, defaultHeaders: { 'Accept-Language': 'ja' },
  });
  await assert.rejects(
    japanese.chat.completions.create({ model: 'chain', messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && /メッセージを 1 つ以上/.test(e.message),
  );
});

test('a client that disconnects mid-answer frees its slot', async () => {
  // A plain HTTP request destroyed after the first token: the socket really closes.
  // (openai-node's AbortController stops reading, but its connection may stay open.)
  await new Promise((resolve, reject) => {
    const request = http.request(`${server.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
    }, (response) => {
      response.on('data', (data) => {
        if (data.toString().includes('"content":"の"')) {
          request.destroy();
          resolve();
        }
      });
    });
    request.on('error', () => {});
    request.end(JSON.stringify({ messages: [{ role: 'user', content: '長く' }], stream: true }));
    setTimeout(() => reject(new Error('no token within 10 s')), 10000).unref();
  });
  let active = 1;
  for (let i = 0; i < 100 && active !== 0; i += 1) {
    await sleep(20);
    active = await server.metric('koto_slots_active');
  }
  assert.equal(active, 0);
  // Stopped long before the context was full (the slow model needs seconds for that).
  assert.match(server.log(), /stop=cancelled [0-9.]+s client-gone/);
});

test('API keys: wrong keys get 401, the right one works', async () => {
  const dir = tempDir('keys');
  const keyFile = writeFile(dir, 'keys.txt', '# users\nalice-key-0123456789\n');
  const secured = await startServer(['-m', CHAIN, '--alias', 'chain', '--api-key-file', keyFile], {
    name: 'keys', env: { KOTO_API_KEY: 'bob-key-9876543210' },
  });
  try {
    const wrong = new OpenAI({ baseURL: `${secured.url}/v1`, apiKey: 'alice-key-0123456780', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    for (const key of ['alice-key-0123456789', 'bob-key-9876543210']) {
      const right = new OpenAI({ baseURL: `${secured.url}/v1`, apiKey: key, maxRetries: 0 });
      const completion = await right.chat.completions.create({
        model: 'chain', messages: [{ role: 'user', content: 'こんにちは' }], max_tokens: 3,
      });
      assert.equal(completion.choices[0].message.content, 'の');
    }
  } finally {
    assert.equal((await secured.stop()).code, 0);
  }
});
