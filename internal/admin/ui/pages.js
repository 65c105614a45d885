// The dashboard's pages. Each has mount (build the page once, reading what does not change
// while it is on screen) and update (re-read the admin JSON and redraw; called once a second).
import { api } from './app.js';
import { lineChart, timeline, secs, connText, reuseText } from './svg.js';

// h builds an HTML element: h('td', {class: 'num'}, 'text', child...).
function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
  return e;
}

const num = (v, d = 0) => (typeof v === 'number' ? v.toFixed(d) : '–');
const ms = v => (v > 0 ? `${(v * 1000).toFixed(v < 0.01 ? 2 : 1)} ms` : '–');
const short = v => (v ? v.slice(0, 12) : '–');
const when = t => (t ? new Date(t).toLocaleString([], { hour12: false }) : '–');

function cards(items) {
  return h('dl', { class: 'cards' }, items.map(([label, value, id]) =>
    h('div', {}, h('dt', {}, label), h('dd', { id }, value))));
}

function table(caption, head, rows, id) {
  return h('table', { id },
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, head.map(c => h('th', { scope: 'col', class: c.endsWith('#') ? 'num' : null }, c.replace(/#$/, ''))))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: head.length, class: 'muted' }, 'none'))));
}

const healthMark = { healthy: '✓ healthy', unhealthy: '✕ unhealthy', ejected: '⊘ ejected', unknown: '? unknown' };
function health(state) { return h('span', { class: `state-${state}` }, healthMark[state] || state); }

function region(state, id) {
  const r = h('div', { id, 'aria-live': 'off' });
  state.main.append(r);
  return r;
}

// ---- Overview ----
const overview = {
  name: 'overview', title: 'Overview',
  async mount(st) {
    st.main.append(h('h1', {}, 'Overview'));
    st.body = region(st, 'overview-body');
  },
  async update(st) {
    // The series is kept here: after the first answer, only newer points are asked for.
    st.points = st.points || [];
    const since = st.points.length ? `?since=${Date.parse(st.points[st.points.length - 1].time)}` : '';
    const [status, traffic, reloads] = await Promise.all([api('/admin/status'), api(`/admin/traffic${since}`), api('/admin/reloads')]);
    st.points = st.points.concat(traffic.points).slice(-300);
    const r = traffic.recent;
    const errs = Object.entries(traffic.errors_total);
    const pts = st.points;
    const to = pts.length ? Date.parse(pts[pts.length - 1].time) : Date.now();
    const first = pts.length ? Date.parse(pts[0].time) : to;
    const from = Math.max(to - 5 * 60 * 1000, Math.min(first, to - 60 * 1000)); // up to 5 min, at least 1

    const recentErr = {};
    for (const p of pts) for (const [code, n] of Object.entries(p.errors || {})) recentErr[code] = (recentErr[code] || 0) + n;
    const codes = [...new Set([...Object.keys(recentErr), ...errs.map(e => e[0])])].sort();
    st.body.replaceChildren(
      cards([
        ['Version', status.version, 'ov-version'],
        ['Config version', short(status.config.version), 'ov-config'],
        ['Requests/s (last 10 s)', num(r.requests_per_second, 1), 'ov-rps'],
        ['p50 (last 10 s)', ms(r.p50_seconds), 'ov-p50'],
        ['p99 (last 10 s)', ms(r.p99_seconds), 'ov-p99'],
        ['Uptime', secs(Math.round(status.uptime_seconds)), 'ov-uptime'],
      ]),
      h('p', { class: 'note' }, `Config file ${status.config.file || '(none)'}, version `, h('code', {}, status.config.version),
        `, serving since ${when(status.generation_created)}. Percentiles are interpolated in the buckets of sluice_request_duration_seconds.`),
      h('div', { class: 'grid2' },
        h('figure', {}, h('figcaption', {}, 'Requests per second'),
          lineChart({ title: 'Requests per second over the last 5 minutes', from, to, yFmt: v => num(v, v < 10 ? 1 : 0),
            series: [{ label: 'req/s', points: pts.map(p => [Date.parse(p.time), p.requests_per_second]) }] })),
        h('figure', {}, h('figcaption', {}, 'Latency p50 (solid) and p99 (dashed)'),
          lineChart({ title: 'Latency p50 (solid) and p99 (dashed) over the last 5 minutes', from, to, yFmt: ms,
            series: [{ label: 'p50', points: pts.filter(p => p.requests).map(p => [Date.parse(p.time), p.p50_seconds]) },
              { label: 'p99', points: pts.filter(p => p.requests).map(p => [Date.parse(p.time), p.p99_seconds]) }] }))),
      h('h2', {}, 'Gateway-made errors by reason'),
      codes.length ? h('figure', {}, h('figcaption', {}, 'Gateway-made errors per second, by reason (each reason its own line style)'),
        lineChart({ title: 'Gateway-made errors per second by reason code', from, to, height: 170, width: 1100, yFmt: v => num(v, v < 10 ? 1 : 0),
          series: codes.slice(0, 4).map(c => ({ label: c, points: pts.map(p => [Date.parse(p.time), ((p.errors || {})[c] || 0) / (p.seconds || 1)]) })) })) : null,
      table('Errors the gateway answered itself (docs/errors.md), by reason code', ['reason', 'last 5 min#', 'last 10 s#', 'since start#'],
        codes.map(c => h('tr', {}, h('td', {}, h('code', {}, c)), h('td', { class: 'num' }, String(recentErr[c] || 0)),
          h('td', { class: 'num' }, String((r.errors || {})[c] || 0)), h('td', { class: 'num' }, String(traffic.errors_total[c] || 0)))), 'ov-errors'),
      h('h2', {}, 'Listeners'),
      table(null, ['name', 'configured address', 'bound address'],
        status.listeners.map(l => h('tr', {}, h('td', {}, l.name || '–'), h('td', {}, h('code', {}, l.address)), h('td', {}, h('code', {}, l.bound)))), 'ov-listeners'),
      h('p', { class: 'note' }, 'Admin listener: ', h('code', {}, status.admin.bound)),
      h('h2', {}, 'Config reloads'),
      table('The latest first; a rejected reload keeps the previous config serving', ['time', 'result', 'version or why rejected'],
        reloads.reloads.slice().reverse().map(x => h('tr', {}, h('td', {}, when(x.time)),
          h('td', { class: x.result === 'rejected' ? 'bad' : null }, x.result === 'rejected' ? '✕ rejected' : '✓ applied'),
          h('td', {}, x.result === 'rejected' ? x.error : h('code', {}, short(x.version))))), 'ov-reloads'),
    );
  },
};

// ---- Routes ----
function matchText(m) {
  const parts = [];
  if (m.hosts && m.hosts.length) parts.push(`host ${m.hosts.join(', ')}`);
  if (m.path) parts.push(`path ${m.path}`);
  if (m.path_prefix) parts.push(`prefix ${m.path_prefix}`);
  if (m.path_regex) parts.push(`regex ${m.path_regex}`);
  if (m.methods && m.methods.length) parts.push(m.methods.join(' '));
  if (m.headers && m.headers.length) parts.push(`${m.headers.length} header condition(s)`);
  if (m.query && m.query.length) parts.push(`${m.query.length} query condition(s)`);
  return parts.join('; ') || 'everything';
}

const routes = {
  name: 'routes', title: 'Routes',
  async mount(st) {
    st.main.append(h('h1', {}, 'Routes'),
      h('p', { class: 'note' }, 'The compiled table in precedence order: when several routes match a request, the one higher in this list wins (priority, then host, then path specificity, then conditions, then file order).'));
    st.body = region(st, 'routes-body');
  },
  async update(st) {
    const [order, cfg, traffic] = await Promise.all([api('/admin/routes/order'), api('/admin/routes'), api(`/admin/traffic?since=${Date.now()}`)]); // no series needed
    const byIndex = cfg.routes;
    st.body.replaceChildren(table(null, ['order', 'route', 'matches', 'upstream', 'requests#', 'req/s (10 s)#', 'precedence key'],
      order.routes.map((r, i) => {
        const t = traffic.routes[r.id] || { total: 0, requests_per_second: 0 };
        return h('tr', { 'data-route': r.id }, h('td', {}, String(i + 1)), h('th', { scope: 'row' }, r.id),
          h('td', {}, matchText((byIndex[r.index] || {}).match || {})),
          h('td', {}, r.upstream ? h('a', { href: `#pool/${encodeURIComponent(r.upstream)}` }, r.upstream) : '–'),
          h('td', { class: 'num' }, String(t.total)), h('td', { class: 'num' }, num(t.requests_per_second, 1)),
          h('td', {}, h('code', {}, r.rank)));
      }), 'routes-table'),
    h('p', { class: 'note' }, `Requests that matched no route: ${(traffic.routes[''] || { total: 0 }).total}.`));
  },
};

// ---- Upstreams ----
const upstreams = {
  name: 'upstreams', title: 'Upstreams',
  async mount(st) {
    st.main.append(h('h1', {}, 'Upstreams'));
    st.body = region(st, 'upstreams-body');
  },
  async update(st) {
    const ups = (await api('/admin/upstreams')).upstreams;
    st.body.replaceChildren(...ups.map(u => h('section', { 'aria-labelledby': `up-${u.id}` },
      h('h2', { id: `up-${u.id}` }, `${u.id} `, h('span', { class: 'muted' }, `(balancer ${u.balancer ? u.balancer.policy : '–'})`)),
      table(null, ['target', 'health', 'weight#', 'in flight#', 'failures in a row#', 'ejections#', 'idle conns#', 'in use#', 'learned idle', 'effective idle', 'reuse factor#', ''],
        u.targets.map(t => h('tr', { 'data-target': t.address },
          h('th', { scope: 'row' }, h('code', {}, t.address)),
          h('td', {}, health(t.health), t.health_reason ? h('div', { class: 'muted' }, t.health_reason) : null,
            t.health_since ? h('div', { class: 'muted' }, `since ${when(t.health_since)}`) : null,
            t.ejected_until ? h('div', { class: 'muted' }, `out until ${when(t.ejected_until)}`) : null),
          h('td', { class: 'num' }, String(t.weight)), h('td', { class: 'num' }, String(t.in_flight)),
          h('td', { class: 'num' }, String(t.consecutive_failures)), h('td', { class: 'num' }, String(t.ejections)),
          h('td', { class: 'num' }, String(t.idle_connections)), h('td', { class: 'num' }, String(t.in_use_connections)),
          h('td', {}, t.learned_idle_timeout_seconds ? `${secs(t.learned_idle_timeout_seconds)} (${t.learned_source})` : 'none'),
          h('td', {}, t.effective_idle_timeout_seconds ? secs(t.effective_idle_timeout_seconds) : 'no reuse'),
          h('td', { class: 'num' }, num(t.reuse_factor, 2)),
          h('td', {}, h('a', { href: `#pool/${encodeURIComponent(u.id)}/${encodeURIComponent(t.address)}` }, 'pool view')))), `targets-${u.id}`))));
  },
};

// ---- Pool ----
const pool = {
  name: 'pool', title: 'Pool',
  async mount(st) {
    const ups = (await api('/admin/upstreams')).upstreams;
    st.upstream = st.args[0] || (ups[0] && ups[0].id) || '';
    st.target = st.args[1] || '';
    st.window = 0; // 0: fit the connections shown
    const sel = h('select', { id: 'pool-upstream', onchange: e => { location.hash = `#pool/${encodeURIComponent(e.target.value)}`; } },
      ups.map(u => h('option', { value: u.id, selected: u.id === st.upstream }, u.id)));
    const win = h('select', { id: 'pool-window', onchange: e => { st.window = Number(e.target.value); } },
      [[0, 'fit'], [30, '30 s'], [60, '1 min'], [300, '5 min'], [600, '10 min']].map(([v, l]) => h('option', { value: v, selected: v === 0 }, l)));
    st.main.append(h('h1', {}, 'Pool view'),
      h('form', { class: 'inline', onsubmit: e => e.preventDefault() },
        h('label', {}, 'Upstream', sel), h('label', {}, 'Time window', win)),
      h('p', { class: 'note' }, 'Each row is one upstream connection: ○ opened, ▲ reused (labelled with its idle age at reuse), ✕ closed (with the reason). ' +
        'The lower panel draws the learned (dashed) and effective (solid) idle timeouts over the same time, with each reuse\'s idle age as a dot. ' +
        'Reuses are seen by comparing snapshots once a second while this page is open; several between two polls show as one mark ×N.'));
    st.body = region(st, 'pool-body');
  },
  async update(st) {
    if (!st.upstream) { st.body.replaceChildren(h('p', {}, 'No upstreams.')); return; }
    const tl = await api(`/admin/upstreams/${encodeURIComponent(st.upstream)}/timeline`);
    const targets = tl.targets.filter(t => !st.target || t.address === st.target);
    st.body.replaceChildren(...targets.map(t => poolTarget(st, t)));
  },
};

function poolTarget(st, t) {
  const to = Date.parse(t.now);
  let from = to - st.window * 1000;
  if (!st.window) { // fit: from just before the oldest connection kept, 10 s at least
    const first = Math.min(to - 10000, ...t.connections.map(c => Date.parse(c.opened)));
    from = first - (to - first) * 0.03;
  }
  const conns = t.connections.filter(c => !c.closed || Date.parse(c.closed) >= from);
  const ages = [];
  for (const c of conns) for (const m of c.reuses) if (m.idle_age_seconds >= 0) ages.push([Date.parse(m.time), m.idle_age_seconds]);
  const checkouts = t.opened + t.reused;
  const closed = Object.entries(t.closed_by).sort((a, b) => b[1] - a[1]);
  const id = `pool-${t.address.replace(/[^a-z0-9]/gi, '-')}`;
  return h('section', { 'aria-labelledby': id, 'data-target': t.address },
    h('h2', { id }, `${st.upstream} → `, h('code', {}, t.address)),
    cards([
      ['Reuse factor (self-healing)', num(t.reuse_factor, 2), `${id}-factor`],
      ['Requests per connection', checkouts && t.opened ? num(checkouts / t.opened, 2) : '–', `${id}-perconn`],
      ['Opened', String(t.opened), `${id}-opened`],
      ['Reused', String(t.reused), `${id}-reused`],
      ['Stale caught by the reuse check', String(t.stale_caught), `${id}-stale`],
      ['Failures on reused connections', String(t.reset_on_reuse), `${id}-reset`],
      ['Learned idle timeout', t.learned_idle_timeout_seconds ? `${secs(t.learned_idle_timeout_seconds)} (${t.learned_source})` : 'none', `${id}-learned`],
      ['Effective idle timeout', t.effective_idle_timeout_seconds ? secs(t.effective_idle_timeout_seconds) : 'no reuse', `${id}-effective`],
    ]),
    h('figure', {}, h('figcaption', {}, `Connections to ${t.address}, last ${secs(Math.round((to - from) / 1000))}`),
      conns.length ? timeline({ title: `Timeline of the connections to ${t.address}`, conns, idle: t.idle_timeouts, reuseAges: ages, from, to })
        : h('p', { class: 'muted' }, 'No connections in this window.')),
    h('h3', {}, 'Connections (the same, as text)'),
    table(null, ['id', 'opened', 'state', 'requests#', 'reuses (idle age)', 'closed', 'reason', 'idle at close'],
      conns.slice().reverse().map(c => h('tr', { 'data-conn': c.id, title: connText(c) },
        h('td', {}, String(c.id)), h('td', {}, when(c.opened)), h('td', {}, c.state.replace('_', ' ')),
        h('td', { class: 'num' }, String(c.requests_served)),
        h('td', {}, c.reuses.map(reuseText).join(', ') || '–'),
        h('td', {}, c.closed ? when(c.closed) : '–'), h('td', {}, c.reason ? h('code', {}, c.reason) : '–'),
        h('td', {}, c.closed_idle_seconds ? secs(c.closed_idle_seconds) : '–'))), `${id}-conns`),
    h('h3', {}, 'Closed, by reason (since the pool was created)'),
    table(null, ['reason', 'connections#'], closed.map(([r, n]) => h('tr', {}, h('td', {}, h('code', {}, r)), h('td', { class: 'num' }, String(n)))), `${id}-closedby`));
}

// ---- Probe ----
const probe = {
  name: 'probe', title: 'Probe',
  async mount(st) {
    const ups = (await api('/admin/upstreams')).upstreams;
    const opts = [];
    for (const u of ups) for (const t of u.targets) opts.push(h('option', { value: `${u.id} ${t.address}` }, `${u.id} → ${t.address}`));
    const out = h('div', { id: 'probe-result', 'aria-live': 'polite' });
    const btn = h('button', { type: 'submit', id: 'probe-run' }, 'Run probe');
    const form = h('form', { class: 'inline', id: 'probe-form', onsubmit: async e => {
      e.preventDefault();
      const [upstream, target] = form.elements.target.value.split(' ');
      btn.disabled = true;
      out.setAttribute('aria-busy', 'true');
      out.replaceChildren(h('p', {}, `Probing ${target}… this takes up to the backend's idle timeout (at most ${form.elements.wait.value} s).`));
      try {
        const res = await api('/admin/probe', { method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ upstream, target, path: form.elements.path.value, max_wait_seconds: Number(form.elements.wait.value), max_requests: Number(form.elements.reqs.value) }) });
        out.replaceChildren(probeResult(res));
      } catch (err) {
        out.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Probe failed: ${err.message}`));
      } finally {
        btn.disabled = false;
        out.removeAttribute('aria-busy');
      }
    } },
    h('label', {}, 'Target', h('select', { name: 'target', id: 'probe-target' }, opts)),
    h('label', {}, 'Path', h('input', { name: 'path', value: '/', size: 16 })),
    h('label', {}, 'Max wait (s, ≤ 20)', h('input', { name: 'wait', type: 'number', min: 1, max: 20, value: 10 })),
    h('label', {}, 'Max requests (≤ 200)', h('input', { name: 'reqs', type: 'number', min: 1, max: 200, value: 50 })),
    btn);
    st.main.append(h('h1', {}, 'Probe a target'),
      h('p', { class: 'note' }, 'Runs the same measurement as `sluice probe` from the gateway: does the backend keep connections alive, after what idle time it closes them, after how many requests. One probe runs at a time.'),
      form, out);
  },
  async update() {},
};

function probeResult(res) {
  const r = res.result, rec = res.recommendation;
  const rows = [
    ['Target', `${r.target} (GET ${r.path})`],
    ['Status', String(r.status)],
    ['Keeps connections alive', r.keeps_alive ? 'yes' : `no: ${r.no_keep_alive_reason || ''}`],
    ['Keep-Alive header', r.keep_alive_header || '(none)'],
    ['Idle timeout', r.idle ? (r.idle.observed ? secs(r.idle.timeout_ms / 1000) : `not seen within ${secs(r.idle.max_wait_ms / 1000)}`) : '–'],
    ['Request limit', r.request_limit ? (r.request_limit.limit ? `${r.request_limit.limit} requests` : `none within ${r.request_limit.tried}`) : '–'],
    ['Took', secs(r.elapsed_ms / 1000)],
  ];
  return h('div', {}, h('h2', {}, 'Measurement'),
    h('dl', { class: 'cards', id: 'probe-cards' }, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
    h('h2', {}, 'Recommended upstream keepalive settings'),
    h('ul', { id: 'probe-rec' },
      h('li', {}, `enabled: ${rec.enabled}`),
      rec.idle_timeout_ms ? h('li', {}, `idle_timeout: ${secs(rec.idle_timeout_ms / 1000)}`) : null,
      rec.max_requests ? h('li', {}, `max_requests: ${rec.max_requests}`) : null,
      (rec.notes || []).map(n => h('li', {}, n))));
}

export const pages = { overview, routes, upstreams, pool, probe };
