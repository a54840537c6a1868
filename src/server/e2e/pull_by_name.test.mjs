// `koto pull` → `koto models` → `koto run -m NAME` → `koto rm`, as a new user would, against
// a hub on a loopback port (this script serves the fixtures' stories260K.gguf the way the
// Hugging Face hub serves files: a redirect carrying X-Linked-Size and X-Linked-ETag, then
// the bytes with Range support). Nothing reaches the internet.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KOTO, FIXTURES, tempDir } from './serve_process.mjs';

const run = promisify(execFile);
const model = readFileSync(join(FIXTURES, 'models', 'stories260K.gguf'));
const sha = createHash('sha256').update(model).digest('hex');

function startHub() {
  const server = createServer((req, res) => {
    if (req.url === '/api/models/test/stories-GGUF/tree/main') {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify([{ type: 'file', path: 'stories260K.gguf', size: model.length, lfs: { oid: sha, size: model.length } },
        { type: 'file', path: 'README.md', size: 3 }]));
      return;
    }
    if (req.url === '/test/stories-GGUF/resolve/main/stories260K.gguf') {
      res.writeHead(302, { Location: '/cdn/stories260K.gguf', 'X-Linked-Size': String(model.length), 'X-Linked-ETag': `"${sha}"` });
      res.end();
      return;
    }
    if (req.url === '/cdn/stories260K.gguf') {
      const range = /bytes=(\d+)-/.exec(req.headers.range || '');
      const start = range ? Number(range[1]) : 0;
      res.writeHead(range ? 206 : 200, { 'Content-Length': String(model.length - start), ETag: '"v1"', 'Accept-Ranges': 'bytes' });
      res.end(req.method === 'HEAD' ? undefined : model.subarray(start));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('pull by OWNER/REPO:QUANT, list, run by name, remove', async () => {
  const hub = await startHub();
  const home = tempDir('store');
  const env = { ...process.env, KOTO_HOME: home, KOTO_LANG: 'en', KOTO_HF_ENDPOINT: `http://127.0.0.1:${hub.address().port}` };
  try {
    const pulled = await run(KOTO, ['pull', 'test/stories-GGUF:stories260K'], { env });
    assert.match(pulled.stdout, /test\/stories-GGUF\/stories260K\.gguf: 0\.00 GB, SHA-256 verified, saved to /);
    assert.match(pulled.stdout, /^fits: needs /m);
    assert.ok(existsSync(join(home, 'models', 'test', 'stories-GGUF', 'stories260K.gguf')));

    const listed = JSON.parse((await run(KOTO, ['models', '--json'], { env })).stdout);
    assert.equal(listed.length, 1);
    assert.equal(listed[0].name, 'test/stories-GGUF/stories260K.gguf');
    assert.equal(listed[0].sha256, sha);
    assert.equal(listed[0].architecture, 'llama');
    assert.equal(listed[0].fits, true);
    assert.equal(listed[0].last_used, 0);

    // By name, as the greedy story begins (fixtures' stories260K.greedy.txt).
    const greedy = readFileSync(join(FIXTURES, 'models', 'stories260K.greedy.txt'), 'utf8');
    const answer = await run(KOTO, ['run', '-m', 'stories260K', '--raw', '--temp', '0', '-n', '200', ''], { env });
    assert.equal(answer.stdout, greedy);
    const used = JSON.parse((await run(KOTO, ['models', '--json'], { env })).stdout);
    assert.ok(used[0].last_used > 0);

    const again = await run(KOTO, ['pull', 'hf.co/test/stories-GGUF/stories260K.gguf'], { env });
    assert.match(again.stdout, /already in the store/);

    await assert.rejects(run(KOTO, ['run', '-m', 'no-such-model', 'x'], { env }),
      (e) => e.code === 1 && /koto pull/.test(e.stderr));
    // A catalogue name that is not downloaded yet: the command to get it.
    await assert.rejects(run(KOTO, ['run', '-m', 'elyza-7b', 'x'], { env }),
      (e) => e.code === 1 && /elyza-7b is not downloaded yet: run koto pull elyza-7b/.test(e.stderr));
    const catalogue = JSON.parse((await run(KOTO, ['models', '--available', '--json'], { env })).stdout);
    assert.ok(catalogue.some((m) => m.name === 'tinyswallow-1.5b' && m.repo === 'SakanaAI/TinySwallow-1.5B-Instruct-GGUF'));
    await run(KOTO, ['rm', 'stories260K'], { env });
    assert.deepEqual(JSON.parse((await run(KOTO, ['models', '--json'], { env })).stdout), []);
  } finally {
    hub.close();
  }
});
