// SIGTERM and SIGINT: no new requests, running answers finish (or are cancelled after
// --shutdown-timeout, with an error event the SDKs understand), exit code 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, postJson, MODELS_DIR, sleep } from './serve_process.mjs';

// Reads an SSE response as it arrives.
async function openStream(url, body) {
  const response = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(response.status, 200);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    async until(pattern) {
      while (!pattern.test(text)) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      return text;
    },
    text: () => text,
  };
}

test('SIGTERM lets a running answer finish, turns new requests away, exits 0', async () => {
  const server = await startServer(['-m', join(MODELS_DIR, 'slow-chain.gguf'), '--shutdown-timeout', '30']);
  const stream = await openStream(`${server.url}/v1/chat/completions`, {
    messages: [{ role: 'user', content: '短く' }], max_tokens: 300,
  });
  await stream.until(/"content":"の"/);
  server.child.kill('SIGTERM');
  await sleep(100);
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 503);
  assert.equal((await health.json()).status, 'shutting_down');
  const refused = await postJson(`${server.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] });
  assert.equal(refused.status, 503);
  assert.equal(JSON.parse(refused.text).error.code, 'shutting_down');
  const all = await stream.until(/data: \[DONE\]/);
  assert.match(all, /"finish_reason":"length"/);
  const exit = await server.stop('SIGTERM');
  assert.equal(exit.code, 0);
  assert.match(server.log(), /completion=300 .*stop=max_tokens/);
});

test('past --shutdown-timeout the answer is cut with an error event, then exit 0', async () => {
  const server = await startServer(['-m', join(MODELS_DIR, 'slow-chain.gguf'), '--shutdown-timeout', '1']);
  const stream = await openStream(`${server.url}/v1/chat/completions`, { messages: [{ role: 'user', content: '長く' }] });
  await stream.until(/"content":"の"/);
  const started = Date.now();
  server.child.kill('SIGINT');
  const all = await stream.until(/data: \[DONE\]/);
  assert.match(all, /data: \{"error":\{"code":"shutting_down"/, server.log());
  const exit = await server.stop('SIGINT');
  assert.equal(exit.code, 0);
  assert.ok(Date.now() - started < 15000, 'cancelled soon after the timeout');
  assert.match(server.log(), /cancelling 1 unfinished answers/);
});
