// A prefix processed before a restart is found on disk by the next `koto serve` with the
// same --cache-dir: the answer is the same as without any cache, only faster to start.
// Damaged cache files are ignored with a warning, never trusted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, openSync, readSync, writeSync, closeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, postJson, tempDir, FIXTURES } from './serve_process.mjs';

const STORIES = join(FIXTURES, 'models', 'stories260K.gguf');
const DOCUMENT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog Max. ' +
  'One day, Lily and Max went to the park. They saw a big tree with a red ball in it. Lily wanted the ball, but it ' +
  'was too high. Max barked and jumped, but he could not reach it either.';

async function complete(server, prompt) {
  const response = await postJson(`${server.url}/v1/completions`, { prompt, max_tokens: 40, temperature: 0 });
  assert.equal(response.status, 200, response.text);
  return JSON.parse(response.text);
}

function tokensOf(server, content) {
  return postJson(`${server.url}/tokenize`, { content, add_special: true }).then((r) => JSON.parse(r.text).tokens);
}

test('a restart with --cache-dir reuses the prefix from disk; damage is ignored', async () => {
  const cacheDir = tempDir('cache');
  const first = `${DOCUMENT} Lily said`;
  const second = `${DOCUMENT} Then a bird`;

  // What the second prompt gives with no cache at all.
  const plain = await startServer(['-m', STORIES, '--cache-mb', '0'], { name: 'plain' });
  const expected = await complete(plain, second);
  assert.equal(expected.usage.prompt_tokens_details.cached_tokens, 0);
  const [a, b] = [await tokensOf(plain, first), await tokensOf(plain, second)];
  let common = 0;
  while (a[common] === b[common]) common += 1;
  assert.equal((await plain.stop()).code, 0);

  const before = await startServer(['-m', STORIES, '--cache-dir', cacheDir], { name: 'before' });
  assert.equal((await complete(before, first)).usage.prompt_tokens_details.cached_tokens, 0);
  assert.equal((await before.stop()).code, 0);  // pending cache writes are finished on the way out

  const after = await startServer(['-m', STORIES, '--cache-dir', cacheDir], { name: 'after' });
  const restored = await complete(after, second);
  assert.equal(restored.usage.prompt_tokens_details.cached_tokens, common);
  assert.equal(restored.choices[0].text, expected.choices[0].text);
  assert.ok((await after.metric('koto_prefix_cache_disk_loads_total')) > 0);
  assert.equal((await after.stop()).code, 0);
  assert.doesNotMatch(after.log(), /ignored and deleted/);

  // Flip a byte at the end of every block file: each fails its checksum.
  const [modelFolder] = readdirSync(cacheDir);
  const files = readdirSync(join(cacheDir, modelFolder)).filter((f) => f.endsWith('.kvb'));
  assert.ok(files.length > 0);
  for (const file of files) {
    const fd = openSync(join(cacheDir, modelFolder, file), 'r+');
    const size = fstatSync(fd).size;
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, size - 1);
    byte[0] ^= 0x55;
    writeSync(fd, byte, 0, 1, size - 1);
    closeSync(fd);
  }
  const damaged = await startServer(['-m', STORIES, '--cache-dir', cacheDir], { name: 'damaged' });
  const safe = await complete(damaged, second);
  assert.equal(safe.choices[0].text, expected.choices[0].text);
  assert.equal(safe.usage.prompt_tokens_details.cached_tokens, 0);
  assert.equal((await damaged.stop()).code, 0);
  assert.match(damaged.log(), /prefix cache: ignored and deleted .*checksum mismatch/);
});
