// Runs the real `koto serve` executable for the end-to-end tests: a free loopback port
// (--port 0 --port-file), ready when /health says 200, stopped with a signal and its
// exit code checked. Paths come from the environment CTest sets:
//   KOTO        the koto executable
//   MODELS_DIR  the chain models written by koto_test_models
//   FIXTURES    ../shared/fixtures
//   NPM_DIR     the folder npm installed the `openai` package into
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

export const KOTO = required('KOTO');
export const MODELS_DIR = required('MODELS_DIR');
export const FIXTURES = required('FIXTURES');

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set (run these tests through ctest)`);
  return value;
}

// The official OpenAI client, as npm installed it into the build tree.
export function openaiModule() {
  const require = createRequire(join(required('NPM_DIR'), 'package.json'));
  return require('openai');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Like sleep, but does not keep the process alive (for the losing side of a race).
export const timeLimit = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

// Folders made by tempDir are removed when this test process exits (without this every
// run left a dozen in the system's temporary directory), and servers a failed test did
// not stop are killed then, so none outlives its test.
const madeDirs = [];
const runningServers = new Set();
process.on('exit', () => {
  for (const child of runningServers) child.kill('SIGKILL');
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `koto-e2e-${name}-`));
  madeDirs.push(dir);
  return dir;
}

// Starts `koto serve ARGS`; resolves once /health answers 200 (at most 30 s).
export async function startServer(args, { env = {}, name = 'serve' } = {}) {
  const dir = tempDir(name);
  const portFile = join(dir, 'port');
  const child = spawn(KOTO, ['serve', '--port', '0', '--port-file', portFile, ...args], {
    env: { ...process.env, KOTO_LANG: 'en', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (data) => { log += data.toString(); });
  runningServers.add(child);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    runningServers.delete(child);
    resolve({ code, signal });
  }));
  let exitInfo = null;
  exited.then((info) => { exitInfo = info; });

  const deadline = Date.now() + 30000;
  let port = 0;
  while (Date.now() < deadline && exitInfo === null) {
    if (port === 0 && existsSync(portFile)) port = Number(readFileSync(portFile, 'utf8').trim()) || 0;
    if (port !== 0) {
      try {
        const health = await fetch(`http://127.0.0.1:${port}/health`);
        if (health.status === 200) break;
      } catch { /* not listening yet */ }
    }
    await sleep(20);
  }
  if (exitInfo !== null || port === 0) {
    throw new Error(`koto serve did not become ready (exit ${JSON.stringify(exitInfo)}):\n${log}`);
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    child,
    log: () => log,
    // Sends `signal` and waits (at most timeoutMs) for the exit; returns {code, signal, ms}.
    async stop(signal = 'SIGTERM', timeoutMs = 20000) {
      const started = Date.now();
      if (exitInfo === null) child.kill(signal);
      const result = await Promise.race([exited, timeLimit(timeoutMs).then(() => null)]);
      if (result === null) {
        child.kill('SIGKILL');
        throw new Error(`koto serve did not exit within ${timeoutMs} ms of ${signal}:\n${log}`);
      }
      return { ...result, ms: Date.now() - started };
    },
    async metric(name) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(name + ' '));
      return line === undefined ? undefined : Number(line.split(' ')[1]);
    },
  };
}

export async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

export function writeFile(dir, name, text) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
