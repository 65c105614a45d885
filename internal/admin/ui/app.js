// The dashboard shell: the page router (#overview, #routes, ...), the API client that adds
// the key, the login form, and the 1 Hz poll of the admin JSON for the page on screen.
import { pages } from './pages.js';

const KEY = 'sluice.apiKey'; // sessionStorage: this tab only, gone when it closes
const POLL_MS = 1000;

export class AuthError extends Error {}

// api fetches admin JSON, with the key (if any) in the X-API-Key header: never in the URL,
// where history, proxies and logs would keep it.
export async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers.set('X-API-Key', key);
  const r = await fetch(path, { ...init, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  if (r.status === 401) {
    showLogin(key ? 'That key was refused.' : '');
    throw new AuthError('unauthorized');
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || `${path}: HTTP ${r.status}`);
  return body;
}

const main = document.getElementById('main');
const login = document.getElementById('login');
const updated = document.getElementById('updated');
const pauseBtn = document.getElementById('pause');
const logoutBtn = document.getElementById('logout');
let current = null; // {name, page, state}
let timer = 0;
let paused = false;
let renders = 0;

function showLogin(msg) {
  stop();
  main.hidden = true;
  login.hidden = false;
  document.getElementById('login-error').textContent = msg;
  document.getElementById('key').focus();
}

document.getElementById('login-form').addEventListener('submit', ev => {
  ev.preventDefault();
  const input = document.getElementById('key');
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = '';
  login.hidden = true;
  main.hidden = false;
  logoutBtn.hidden = false;
  route();
});

logoutBtn.addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  logoutBtn.hidden = true;
  route();
});
logoutBtn.hidden = !sessionStorage.getItem(KEY);

pauseBtn.addEventListener('click', () => {
  paused = !paused;
  pauseBtn.setAttribute('aria-pressed', String(paused));
  pauseBtn.textContent = paused ? 'Resume updates' : 'Pause updates';
  if (!paused) tick();
});

function stop() {
  clearTimeout(timer);
  timer = 0;
}

async function tick() {
  stop();
  const cur = current;
  if (!cur || paused) return;
  try {
    await cur.page.update(cur.state);
    renders++;
    document.body.dataset.renders = String(renders);
    updated.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } catch (e) {
    if (e instanceof AuthError) return;
    updated.textContent = `update failed: ${e.message}`;
  }
  if (cur === current && !paused && !document.hidden) timer = setTimeout(tick, POLL_MS);
}

document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); });

async function route() {
  stop();
  const [name, ...args] = (location.hash.slice(1) || 'overview').split('/').map(decodeURIComponent);
  const page = pages[name] || pages.overview;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#${page.name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${page.title} · Sluice`;
  main.replaceChildren();
  const state = { args, main };
  current = { name, page, state };
  document.body.dataset.page = page.name;
  try {
    await page.mount(state);
  } catch (e) {
    if (!(e instanceof AuthError)) main.append(Object.assign(document.createElement('p'), { className: 'error', textContent: e.message }));
    return;
  }
  tick();
}

window.addEventListener('hashchange', route);
route();
