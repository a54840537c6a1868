// The web chat page in a real Chromium (Debian's, driven by playwright-core) against the
// real `koto serve`: Japanese and English UI, streamed answers, the cost line, stop,
// regenerate, edit and resend, conversations kept in localStorage, answers from
// documents with their sources, the live CPU/memory chart, and that model output can
// never inject HTML or script (Markdown is sanitised). The one test that needs an answer
// no real model here can give (an XSS payload) feeds the page that answer by
// intercepting its request in the browser; every other test talks to the server.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startServer, KOTO, MODELS_DIR, tempDir } from './serve_process.mjs';

const require = createRequire(join(process.env.NPM_DIR, 'package.json'));
const { chromium } = require('playwright-core');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SLOW_CHAIN = join(MODELS_DIR, 'slow-chain.gguf');
const CHAIN_TEXT = 'の大日生語長';
const chainChars = (n) => Array.from({ length: n }, (_, i) => [...CHAIN_TEXT][i % 6]).join('');

let server;
let browser;

before(async () => {
  const docs = tempDir('web-docs');
  mkdirSync(join(docs, 'docs'));
  writeFileSync(join(docs, 'docs', '経費.md'), '# 経費精算\n\n経費精算の締め日は毎月二十五日です。\n');
  const db = join(docs, 'index.db');
  execFileSync(KOTO, ['index', '--db', db, join(docs, 'docs')], { stdio: 'ignore' });
  server = await startServer(['-m', SLOW_CHAIN, '--alias', 'chain', '--parallel', '2', '--db', db], { name: 'web' });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function openPage(locale = 'ja-JP') {
  const context = await browser.newContext({ locale });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  const response = await page.goto(server.url + '/');
  return { context, page, problems, response };
}

async function setMaxTokens(page, n) {
  await page.evaluate(() => { document.getElementById('settings').open = true; });
  await page.fill('#max-tokens', String(n));
  await page.dispatchEvent('#max-tokens', 'change');
}

// Sends a message and waits until the answer has ended (the send button is back).
async function sendAndWait(page, text) {
  const before = await page.locator('.message.assistant').count();
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
  await page.waitForFunction((n) => document.querySelectorAll('.message.assistant').length > n &&
    !document.getElementById('send').hidden, before, { timeout: 20000 });
}

test('Japanese UI, a streamed answer with its cost, under a strict CSP, with no console errors', async () => {
  const { context, page, problems, response } = await openPage('ja-JP');
  assert.match(response.headers()['content-security-policy'], /default-src 'none'; script-src 'self'/);
  assert.equal(await page.textContent('#new-chat'), '新しい会話');
  assert.equal(await page.textContent('#send'), '送信');
  await setMaxTokens(page, 12);
  await sendAndWait(page, 'こんにちは');
  assert.equal(await page.textContent('.message.user .content'), 'こんにちは');
  assert.equal((await page.textContent('.message.assistant .content')).trim(), chainChars(4));
  assert.match(await page.textContent('.message.assistant .cost'), /最初のトークンまで [0-9.]+ 秒 · 毎秒 [0-9.]+ トークン · 毎秒 [0-9.]+ 文字/);
  await page.waitForFunction(() => /CPU \d+ %/.test(document.querySelector('#usage-text').textContent), null, { timeout: 5000 });
  assert.match(await page.textContent('#model-info'), /モデル: chain/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('English UI when the browser prefers English', async () => {
  const { context, page } = await openPage('en-US');
  assert.equal(await page.textContent('#new-chat'), 'New chat');
  assert.equal(await page.textContent('#send'), 'Send');
  await context.close();
});

test('stop cancels on the server; regenerate and edit resend; conversations survive a reload', async () => {
  const { context, page } = await openPage('ja-JP');
  await setMaxTokens(page, 3000);
  await page.fill('#input', '長い回答をお願いします');
  await page.press('#input', 'Enter');
  await page.waitForFunction(() => (document.querySelector('.message.assistant .content')?.textContent || '').length > 10);
  await page.click('#stop');
  await page.locator('.message.assistant .content', { hasText: '(中断しました)' }).waitFor();
  // The server's slot is free again soon after the page gave up.
  let active = '1';
  for (let i = 0; i < 50 && active !== '0'; i++) {
    const metrics = await (await fetch(server.url + '/metrics')).text();
    active = (metrics.match(/^koto_slots_active (\d+)/m) || [])[1];
    if (active !== '0') await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(active, '0');

  await setMaxTokens(page, 6);
  await page.click('text=再生成');
  await page.waitForFunction(() => !document.getElementById('send').hidden &&
    document.querySelector('.message.assistant .cost') !== null);
  assert.equal((await page.textContent('.message.assistant .content')).trim(), chainChars(2));

  page.once('dialog', (d) => d.accept('直した質問'));
  await page.click('.message.user .actions button');
  await page.locator('.message.user .content', { hasText: '直した質問' }).waitFor();
  await page.waitForFunction(() => !document.getElementById('send').hidden && document.querySelector('.message.assistant .cost') !== null);
  assert.equal(await page.locator('.message').count(), 2);

  await page.reload();
  await page.locator('.message.user .content', { hasText: '直した質問' }).waitFor();
  assert.match(await page.textContent('#conversations li.current .title'), /長い回答|直した質問/);
  // A new conversation, then back to the first from the list.
  await page.click('#new-chat');
  assert.equal(await page.locator('.message').count(), 0);
  assert.equal(await page.locator('#conversations li').count(), 2);
  await page.locator('#conversations li .title').nth(1).click();
  assert.equal(await page.locator('.message').count(), 2);
  await context.close();
});

test('answers from documents show their sources, and a plain refusal when they do not say', async () => {
  const { context, page } = await openPage('ja-JP');
  await page.evaluate(() => { document.getElementById('settings').open = true; });
  await page.check('#documents');
  await page.fill('#max-tokens', '6');
  await page.dispatchEvent('#max-tokens', 'change');
  await sendAndWait(page, '社員旅行の行き先はどこですか？');
  assert.equal((await page.textContent('.message.assistant .content')).trim(), '資料には記載がありません。');
  assert.equal(await page.locator('.message.assistant .sources').count(), 0);
  await sendAndWait(page, '経費精算の締め日はいつですか？');
  const sources = page.locator('.message.assistant').nth(1).locator('.sources summary');
  assert.equal(await sources.count(), 1);
  assert.match(await sources.first().textContent(), /^\[1\] 経費\.md 3 行目 「経費精算」$/);
  await context.close();
});

test('model output cannot inject HTML or script: Markdown is rendered, then sanitised', async () => {
  const { context, page, problems } = await openPage('ja-JP');
  const answer = '# 見出し\n\n| 項目 | 値 |\n|---|---|\n| 締め日 | 25 日 |\n\n<img src=x onerror="window.__xss = 1">\n\n' +
    '<script>window.__xss = 2</script>\n\n[リンク](javascript:window.__xss=3)\n\n```js\nconsole.log("コード");\n```\n';
  await page.route('**/v1/chat/completions', async (route) => {
    const chunk = (delta, extra = {}) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;
    const body = chunk({ role: 'assistant', content: '' }) + chunk({ content: answer.slice(0, 40) }) + chunk({ content: answer.slice(40) }) +
      chunk({}, { timings: { time_to_first_token_ms: 10, tokens_per_second: 5, characters_per_second: 9, cached_tokens: 0 } }) + 'data: [DONE]\n\n';
    await route.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream' }, body });
  });
  await sendAndWait(page, '表を見せて');
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  const content = page.locator('.message.assistant .content');
  assert.equal(await content.locator('h1').textContent(), '見出し');
  assert.equal(await content.locator('table td').first().textContent(), '締め日');
  assert.equal(await content.locator('script').count(), 0);
  assert.equal(await content.locator('[onerror]').count(), 0);
  assert.equal(await content.locator('a[href^="javascript"]').count(), 0);
  assert.equal(await content.locator('pre button.copy').textContent(), 'コピー');
  // The only console lines allowed: Chromium reporting that the CSP blocked an inline
  // handler (a second wall behind the sanitiser) and the harmless image's 404.
  assert.deepEqual(problems.filter((p) => !p.includes('Content Security Policy') && !p.includes('404')), []);
  await context.close();
});

test('a server with API keys: the page says the key is missing, then works with it', async () => {
  const dir = tempDir('web-keys');
  writeFileSync(join(dir, 'keys.txt'), 'web-key-0123456789\n');
  const secured = await startServer(['-m', join(MODELS_DIR, 'chain.gguf'), '--alias', 'chain', '--api-key-file', join(dir, 'keys.txt')],
    { name: 'web-keys' });
  const context = await browser.newContext({ locale: 'ja-JP' });
  try {
    const page = await context.newPage();
    await page.goto(secured.url + '/');  // the page itself needs no key
    await page.waitForFunction(() => /エラー/.test(document.getElementById('model-info').textContent));
    await page.evaluate(() => { document.getElementById('settings').open = true; });
    await page.fill('#max-tokens', '3');
    await page.dispatchEvent('#max-tokens', 'change');
    await page.fill('#input', 'こんにちは');
    await page.press('#input', 'Enter');
    await page.locator('#error').waitFor();
    assert.match(await page.textContent('#error'), /^エラー: /);
    await page.fill('#api-key', 'web-key-0123456789');
    await page.dispatchEvent('#api-key', 'change');
    await page.waitForFunction(() => /モデル: chain/.test(document.getElementById('model-info').textContent));
    await sendAndWait(page, 'もう一度');
    assert.equal((await page.locator('.message.assistant .content').last().textContent()).trim(), 'の');
  } finally {
    await context.close();
    assert.equal((await secured.stop()).code, 0);
  }
});
