// koto's web chat page. Everything is served by `koto serve` itself (no CDN, no
// external fonts); the Content-Security-Policy allows only this origin's scripts and
// styles. Model output is untrusted: Markdown is rendered by marked, then sanitised by
// DOMPurify before it touches the DOM.
'use strict';

const STRINGS = {
  ja: {
    newChat: '新しい会話', settings: '設定', systemPrompt: 'システムプロンプト', temperature: '温度', maxTokens: '最大トークン数', apiKey: 'API キー (サーバーが要求する場合)',
    documents: '資料から回答', send: '送信', stop: '停止', placeholder: 'メッセージを入力 (Enter で送信、Shift+Enter で改行)',
    you: 'あなた', assistant: 'アシスタント', rename: '名前', remove: '削除', edit: '編集', regenerate: '再生成',
    copy: 'コピー', copied: 'コピーしました', untitled: '新しい会話', renamePrompt: '会話の名前', removeConfirm: 'この会話を削除しますか？',
    cost: (t) => `最初のトークンまで ${(t.time_to_first_token_ms / 1000).toFixed(2)} 秒 · 毎秒 ${t.tokens_per_second.toFixed(1)} トークン · 毎秒 ${t.characters_per_second.toFixed(1)} 文字` +
      (t.cached_tokens > 0 ? ` · 再利用 ${t.cached_tokens} トークン` : '') +
      (t.lookup_accepted_tokens > 0 ? ` · 先読み ${t.lookup_accepted_tokens}/${t.lookup_drafted_tokens} トークン採用` : ''),
    stopped: '(中断しました)', sources: '出典', notInDocuments: '資料には該当する記載がありませんでした。',
    model: (m) => `モデル: ${m.id} (${m.meta ? m.meta.architecture + '、' + (m.meta.parameters / 1e9).toFixed(2) + 'B パラメータ、コンテキスト ' + m.meta.n_ctx : ''})`,
    usage: (cpu, mem) => `CPU ${cpu.toFixed(0)} % · メモリ ${mem.toFixed(2)} GB`,
    error: (m) => `エラー: ${m}`, lines: (a, b) => (a === b ? `${a} 行目` : `${a}–${b} 行目`), page: (p) => `${p} ページ`,
  },
  en: {
    newChat: 'New chat', settings: 'Settings', systemPrompt: 'System prompt', temperature: 'Temperature', maxTokens: 'Most tokens per answer', apiKey: 'API key (if the server asks for one)',
    documents: 'Answer from documents', send: 'Send', stop: 'Stop', placeholder: 'Type a message (Enter sends, Shift+Enter for a new line)',
    you: 'You', assistant: 'Assistant', rename: 'Rename', remove: 'Delete', edit: 'Edit', regenerate: 'Regenerate',
    copy: 'Copy', copied: 'Copied', untitled: 'New chat', renamePrompt: 'Conversation name', removeConfirm: 'Delete this conversation?',
    cost: (t) => `first token ${(t.time_to_first_token_ms / 1000).toFixed(2)} s · ${t.tokens_per_second.toFixed(1)} tokens/s · ${t.characters_per_second.toFixed(1)} chars/s` +
      (t.cached_tokens > 0 ? ` · ${t.cached_tokens} tokens reused` : '') +
      (t.lookup_accepted_tokens > 0 ? ` · ${t.lookup_accepted_tokens}/${t.lookup_drafted_tokens} guessed tokens kept` : ''),
    stopped: '(stopped)', sources: 'Sources', notInDocuments: 'The documents do not say.',
    model: (m) => `Model: ${m.id} (${m.meta ? m.meta.architecture + ', ' + (m.meta.parameters / 1e9).toFixed(2) + 'B parameters, context ' + m.meta.n_ctx : ''})`,
    usage: (cpu, mem) => `CPU ${cpu.toFixed(0)} % · memory ${mem.toFixed(2)} GB`,
    error: (m) => `Error: ${m}`, lines: (a, b) => (a === b ? `line ${a}` : `lines ${a}–${b}`), page: (p) => `page ${p}`,
  },
};
// Japanese unless the browser's first choice is English.
const firstLanguage = ((navigator.languages && navigator.languages[0]) || navigator.language || 'ja').toLowerCase();
const LANG = firstLanguage.startsWith('en') ? 'en' : 'ja';
const T = STRINGS[LANG];

const $ = (id) => document.getElementById(id);
const STORE = 'koto.conversations';
const KEY = 'koto.apiKey';
// Headers of every API call: the key, when the user gave one.
function apiHeaders(extra = {}) {
  const key = localStorage.getItem(KEY);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}
const CURRENT = 'koto.current';
let conversations = [];
let current = null;
let modelId = '';
let controller = null;

function load() {
  try { conversations = JSON.parse(localStorage.getItem(STORE) || '[]'); } catch { conversations = []; }
  if (!Array.isArray(conversations)) conversations = [];
  current = conversations.find((c) => c.id === localStorage.getItem(CURRENT)) || null;
  if (!current) newConversation();
}
function save() {
  localStorage.setItem(STORE, JSON.stringify(conversations));
  if (current) localStorage.setItem(CURRENT, current.id);
}
function newConversation() {
  current = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: '', system: '', temperature: 0.7, maxTokens: 1024, documents: false, messages: [] };
  conversations.unshift(current);
  save();
}

// ---- rendering ----

function renderMarkdown(element, text) {
  const html = window.marked.parse(text, { gfm: true, breaks: true });
  element.innerHTML = window.DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
  for (const pre of element.querySelectorAll('pre')) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'copy';
    button.textContent = T.copy;
    button.addEventListener('click', () => {
      const code = pre.querySelector('code');
      navigator.clipboard?.writeText((code || pre).textContent).then(() => { button.textContent = T.copied; });
    });
    pre.appendChild(button);
  }
}
window.kotoRenderMarkdown = renderMarkdown;

function sourceLine(s) {
  return `[${s.number}] ${s.path} ${s.page ? T.page(s.page) : T.lines(s.line_start, s.line_end)}${s.heading ? ' 「' + s.heading + '」' : ''}`;
}

function renderMessage(message, index) {
  const div = document.createElement('div');
  div.className = `message ${message.role}`;
  div.dataset.index = String(index);
  const role = document.createElement('div');
  role.className = 'role';
  role.textContent = message.role === 'user' ? T.you : T.assistant;
  div.appendChild(role);
  const content = document.createElement('div');
  content.className = 'content';
  if (message.role === 'user') content.textContent = message.content;
  else renderMarkdown(content, message.content + (message.stopped ? '\n\n' + T.stopped : ''));
  div.appendChild(content);
  if (message.role === 'assistant' && message.sources && message.sources.length) {
    const box = document.createElement('div');
    box.className = 'sources';
    box.textContent = T.sources;
    const list = document.createElement('ol');
    for (const s of message.sources) {
      const li = document.createElement('li');
      if ((message.cited || []).includes(s.number)) li.className = 'cited';
      const details = document.createElement('details');
      const summary = document.createElement('summary');
      summary.textContent = sourceLine(s);
      const passage = document.createElement('p');
      passage.textContent = s.text;
      details.append(summary, passage);
      li.appendChild(details);
      list.appendChild(li);
    }
    box.appendChild(list);
    div.appendChild(box);
  }
  if (message.role === 'assistant' && message.timings) {
    const cost = document.createElement('div');
    cost.className = 'cost';
    cost.textContent = T.cost(message.timings);
    div.appendChild(cost);
  }
  const actions = document.createElement('div');
  actions.className = 'actions';
  if (message.role === 'user') actions.appendChild(button(T.edit, () => editMessage(index)));
  if (message.role === 'assistant' && index === current.messages.length - 1) actions.appendChild(button(T.regenerate, regenerate));
  div.appendChild(actions);
  return div;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

function renderAll() {
  const list = $('conversations');
  list.textContent = '';
  for (const c of conversations) {
    const li = document.createElement('li');
    if (c === current) li.className = 'current';
    const title = document.createElement('span');
    title.className = 'title';
    title.textContent = c.title || T.untitled;
    title.addEventListener('click', () => { if (!controller) { current = c; save(); renderAll(); } });
    li.append(title, button(T.rename, () => rename(c)), button(T.remove, () => remove(c)));
    list.appendChild(li);
  }
  $('system-prompt').value = current.system;
  $('temperature').value = String(current.temperature);
  $('temperature-value').textContent = Number(current.temperature).toFixed(2);
  $('documents').checked = !!current.documents;
  $('max-tokens').value = String(current.maxTokens || 1024);
  const messages = $('messages');
  messages.textContent = '';
  current.messages.forEach((m, i) => messages.appendChild(renderMessage(m, i)));
  messages.scrollTop = messages.scrollHeight;
}

function rename(c) {
  const name = prompt(T.renamePrompt, c.title || '');
  if (name !== null) { c.title = name.trim(); save(); renderAll(); }
}
function remove(c) {
  if (!confirm(T.removeConfirm)) return;
  conversations = conversations.filter((x) => x !== c);
  if (current === c) { current = conversations[0] || null; if (!current) newConversation(); }
  save();
  renderAll();
}

function showError(text) {
  const e = $('error');
  e.textContent = text ? T.error(text) : '';
  e.hidden = !text;
}

// ---- talking to koto serve ----

async function ask() {
  showError('');
  const messages = [];
  if (current.system.trim()) messages.push({ role: 'system', content: current.system });
  for (const m of current.messages) messages.push({ role: m.role, content: m.content });
  const answer = { role: 'assistant', content: '' };
  current.messages.push(answer);
  const messagesBox = $('messages');
  const index = current.messages.length - 1;
  let node = renderMessage(answer, index);
  messagesBox.appendChild(node);
  const body = { model: modelId, messages, stream: true, temperature: Number(current.temperature),
    max_tokens: Number(current.maxTokens || 1024) };
  if (current.documents) body.koto_documents = true;
  controller = new AbortController();
  $('send').hidden = true;
  $('stop').hidden = false;
  let pending = false;
  const redraw = () => {
    pending = false;
    const fresh = renderMessage(answer, index);
    node.replaceWith(fresh);
    node = fresh;
    messagesBox.scrollTop = messagesBox.scrollHeight;
  };
  try {
    const response = await fetch('/v1/chat/completions', {
      method: 'POST', headers: apiHeaders({ 'Content-Type': 'application/json' }), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) {
      const error = await response.json().catch(() => ({}));
      throw new Error(error.error?.message || `HTTP ${response.status}`);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const choice = chunk.choices && chunk.choices[0];
        if (choice && choice.delta && choice.delta.content) answer.content += choice.delta.content;
        if (chunk.timings) answer.timings = chunk.timings;
        if (chunk.koto_sources) answer.sources = chunk.koto_sources;
        if (chunk.koto_cited) answer.cited = chunk.koto_cited;
        if (!pending) { pending = true; requestAnimationFrame(redraw); }
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') answer.stopped = true;
    else showError(e.message);
  } finally {
    controller = null;
    $('send').hidden = false;
    $('stop').hidden = true;
    if (!current.title) current.title = (current.messages[0]?.content || '').slice(0, 30);
    save();
    renderAll();
  }
}

function send(text) {
  if (controller || !text.trim()) return;
  current.messages.push({ role: 'user', content: text });
  save();
  renderAll();
  ask();
}

function regenerate() {
  if (controller) return;
  if (current.messages.length && current.messages[current.messages.length - 1].role === 'assistant') current.messages.pop();
  renderAll();
  ask();
}

function editMessage(index) {
  if (controller) return;
  const text = prompt(T.edit, current.messages[index].content);
  if (text === null || !text.trim()) return;
  current.messages = current.messages.slice(0, index);
  send(text);
}

// ---- the server's CPU and memory, live ----

const usage = [];
let usageSince = -1;
async function pollUsage() {
  try {
    const r = await fetch(`/v1/koto/timeline?since=${usageSince}`, { headers: apiHeaders() });
    if (r.ok) {
      const data = await r.json();
      for (const s of data.samples) {
        usage.push({ cpu: s.process_cpu_percent / data.cpu_count, mem: s.rss_bytes / 1e9 });
        usageSince = s.t;
      }
      while (usage.length > 300) usage.shift();
      drawUsage();
    }
  } catch { /* the server is away; try again later */ }
  setTimeout(pollUsage, 1000);
}
function drawUsage() {
  const canvas = $('usage-chart');
  const g = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  if (!usage.length) return;
  const maxMem = Math.max(0.1, ...usage.map((u) => u.mem)) * 1.1;
  const line = (color, y) => {
    g.strokeStyle = color;
    g.beginPath();
    usage.forEach((u, i) => { const x = (i / Math.max(1, usage.length - 1)) * w; i ? g.lineTo(x, y(u)) : g.moveTo(x, y(u)); });
    g.stroke();
  };
  line('#1a73e8', (u) => h - (Math.min(100, u.cpu) / 100) * (h - 2) - 1);
  line('#188038', (u) => h - (u.mem / maxMem) * (h - 2) - 1);
  const last = usage[usage.length - 1];
  $('usage-text').textContent = T.usage(last.cpu, last.mem);
}

// ---- start ----

function start() {
  document.documentElement.lang = LANG;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = T[el.dataset.i18n];
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = T[el.dataset.i18nPlaceholder];
  load();
  renderAll();
  $('new-chat').addEventListener('click', () => { if (!controller) { newConversation(); renderAll(); } });
  $('system-prompt').addEventListener('change', (e) => { current.system = e.target.value; save(); });
  $('temperature').addEventListener('input', (e) => {
    current.temperature = Number(e.target.value);
    $('temperature-value').textContent = current.temperature.toFixed(2);
    save();
  });
  $('documents').addEventListener('change', (e) => { current.documents = e.target.checked; save(); });
  $('max-tokens').addEventListener('change', (e) => { current.maxTokens = Math.max(1, Number(e.target.value) || 1024); save(); });
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('input');
    const text = input.value;
    input.value = '';
    send(text);
  });
  $('input').addEventListener('keydown', (e) => {
    // Enter sends, unless an input method is composing (Japanese conversion) or Shift is held.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('stop').addEventListener('click', () => controller?.abort());
  const loadModel = () => fetch('/v1/models', { headers: apiHeaders() }).then((r) => r.json()).then((data) => {
    if (data.error) throw new Error(data.error.message);
    const m = data.data[0];
    modelId = m.id;
    $('model-info').textContent = T.model(m);
  }).catch((e) => { $('model-info').textContent = T.error(e.message); });
  $('api-key').value = localStorage.getItem(KEY) || '';
  $('api-key').addEventListener('change', (e) => {
    if (e.target.value) localStorage.setItem(KEY, e.target.value); else localStorage.removeItem(KEY);
    loadModel();
  });
  loadModel();
  pollUsage();
}
document.addEventListener('DOMContentLoaded', start);
