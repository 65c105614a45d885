// Charts drawn as SVG by hand: a line chart with labelled series and a connection timeline.
// Series differ by dash pattern and carry text labels, so nothing depends on colour.

const NS = 'http://www.w3.org/2000/svg';

export function s(name, attrs = {}, ...kids) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
  return e;
}

const DASH = ['', '6 4', '2 3', '10 3 2 3'];

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function clock(t) { return new Date(t).toLocaleTimeString([], { hour12: false }); }

// lineChart: series = [{label, points: [[timeMs, value]]}]; returns an <svg>.
export function lineChart({ title, series, from, to, yFmt = String, height = 200, width = 640, yMin }) {
  const pad = { l: 56, r: 190, t: 10, b: 26 };
  const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
  let maxV = 0;
  for (const se of series) for (const [, v] of se.points) maxV = Math.max(maxV, v);
  const ymax = niceMax(Math.max(maxV, yMin || 0));
  const x = t => pad.l + (to > from ? (t - from) / (to - from) : 0) * w;
  const y = v => pad.t + h - (v / ymax) * h;
  const g = s('g');
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4;
    g.append(s('line', { class: 'grid', x1: pad.l, x2: pad.l + w, y1: y(v), y2: y(v) }),
      s('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, v === 0 ? '0' : yFmt(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = from + (to - from) * i / 4;
    g.append(s('text', { x: x(t), y: height - 6, 'text-anchor': 'middle' }, clock(t)));
  }
  g.append(s('line', { class: 'axis', x1: pad.l, x2: pad.l, y1: pad.t, y2: pad.t + h }),
    s('line', { class: 'axis', x1: pad.l, x2: pad.l + w, y1: pad.t + h, y2: pad.t + h }));
  series.forEach((se, i) => {
    const pts = se.points.filter(([t]) => t >= from && t <= to);
    if (pts.length === 0) return;
    const d = pts.map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
    g.append(s('path', { d, class: `s${i % 4}`, fill: 'none', 'stroke-width': 2, 'stroke-dasharray': DASH[i % 4] || null }));
    if (pts.length < 40) for (const [t, v] of pts) g.append(s('circle', { cx: x(t), cy: y(v), r: 2.5, class: `s${i % 4}`, fill: 'none', 'stroke-width': 1.5 }));
    // Legend at the right: a sample of the line's style, its label and last value.
    const ly = pad.t + 8 + i * 16, lx = pad.l + w + 10;
    g.append(s('line', { x1: lx, x2: lx + 18, y1: ly, y2: ly, class: `s${i % 4}`, 'stroke-width': 2, 'stroke-dasharray': DASH[i % 4] || null }),
      s('text', { x: lx + 22, y: ly + 4 }, `${se.label} ${yFmt(pts[pts.length - 1][1])}`));
  });
  return s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title }, s('title', {}, title), g);
}

// timeline: one row per connection from opened to closed (or now); a hollow circle where
// it opened, a filled triangle per reuse (labelled with the idle age), a cross where it
// closed (labelled with the reason). Below, the learned and effective idle timeouts over the
// same time, with each reuse's idle age as a dot: a reuse near the effective line is close
// to the edge. Returns an <svg>.
export function timeline({ title, conns, idle, reuseAges, from, to, width = 1000 }) {
  const rowH = 30, pad = { l: 70, r: 150, t: 14 };
  const w = width - pad.l - pad.r;
  const x = t => pad.l + Math.max(0, Math.min(1, (t - from) / (to - from))) * w;
  const rows = conns.length;
  const idleH = 150, idleTop = pad.t + rows * rowH + 34;
  const height = idleTop + idleH + 30;
  const g = s('g');
  for (let i = 0; i <= 6; i++) {
    const t = from + (to - from) * i / 6;
    g.append(s('line', { class: 'grid', x1: x(t), x2: x(t), y1: pad.t, y2: idleTop + idleH }),
      s('text', { x: x(t), y: pad.t + rows * rowH + 16, 'text-anchor': 'middle' }, clock(t)),
      s('text', { x: x(t), y: height - 8, 'text-anchor': 'middle' }, clock(t)));
  }
  conns.forEach((c, i) => {
    const yy = pad.t + i * rowH + rowH / 2;
    const t0 = Date.parse(c.opened), t1 = c.closed ? Date.parse(c.closed) : to;
    const desc = connText(c);
    const row = s('g', { 'data-conn': c.id }, s('title', {}, desc));
    row.append(s('text', { x: pad.l - 8, y: yy + 4, 'text-anchor': 'end' }, `#${c.id}`),
      s('line', { class: c.closed ? 'life' : 'life live', x1: x(t0), x2: x(t1), y1: yy, y2: yy }));
    if (t0 >= from) row.append(s('circle', { class: 'open', cx: x(t0), cy: yy, r: 5 }));
    let lastX = -1e9, below = false;
    for (const m of c.reuses) {
      const t = Date.parse(m.time);
      if (t < from) continue;
      const cx = x(t);
      below = cx - lastX < 60 ? !below : false; // alternate labels of close marks above and below
      lastX = cx;
      row.append(s('path', { class: 'reuse', d: `M${cx - 5},${yy + 5}L${cx},${yy - 6}L${cx + 5},${yy + 5}Z` }),
        s('text', { x: cx, y: below ? yy + 16 : yy - 8, 'text-anchor': 'middle' }, reuseText(m)));
    }
    // The end label goes right of the mark, or left of the opening when the row ends late.
    const label = c.closed ? c.reason + (c.closed_idle_seconds ? ` (idle ${secs(c.closed_idle_seconds)})` : '')
      : (c.state === 'in_use' ? 'in use' : 'idle');
    const right = x(t1) < pad.l + w * 0.75;
    const lx = right ? x(t1) + 9 : Math.max(pad.l + 4, x(Math.max(t0, from)) - 9);
    if (c.closed) {
      const cx = x(t1);
      row.append(s('path', { class: 'close', d: `M${cx - 5},${yy - 5}L${cx + 5},${yy + 5}M${cx - 5},${yy + 5}L${cx + 5},${yy - 5}` }));
    }
    row.append(s('text', { x: lx, y: yy + 4, 'text-anchor': right ? 'start' : 'end', class: c.closed ? 'end-label' : null }, label));
    g.append(row);
  });
  // Idle timeout panel, on a log scale (a 60 s timeout and a 150 ms reuse both show).
  let maxV = 0.01;
  for (const p of idle) maxV = Math.max(maxV, p.learned_seconds, p.effective_seconds);
  for (const a of reuseAges) maxV = Math.max(maxV, a[1]);
  const lo = -3, hi = Math.max(0, Math.ceil(Math.log10(maxV * 1.05))); // 1 ms .. next power of ten
  const y = v => idleTop + idleH - ((Math.log10(Math.max(v, 0.001)) - lo) / (hi - lo)) * idleH;
  g.append(s('text', { x: pad.l, y: idleTop - 6 }, 'Idle timeouts and the idle age of each reuse (log scale)'));
  for (let e = lo; e <= hi; e++) {
    const v = Math.pow(10, e);
    g.append(s('line', { class: 'grid', x1: pad.l, x2: pad.l + w, y1: y(v), y2: y(v) }),
      s('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, secs(v)));
  }
  const step = key => {
    const pts = idle.filter(p => p[key] > 0).map(p => [Date.parse(p.time), p[key]]);
    if (pts.length === 0) return null;
    let d = '';
    pts.forEach(([t, v], j) => {
      const xx = x(Math.max(t, from));
      d += j === 0 ? `M${xx},${y(v)}` : `H${xx}V${y(v)}`;
    });
    d += `H${x(to)}`;
    return d;
  };
  const last = idle[idle.length - 1] || { learned_seconds: 0, effective_seconds: 0 };
  const eff = step('effective_seconds'), lrn = step('learned_seconds');
  const close = Math.abs(y(last.effective_seconds) - y(last.learned_seconds)) < 14;
  if (eff) g.append(s('path', { d: eff, class: 's0', fill: 'none', 'stroke-width': 2 }),
    s('text', { x: x(to) + 6, y: y(last.effective_seconds) + (close ? -2 : 4) }, `effective ${secs(last.effective_seconds)}`));
  if (lrn) g.append(s('path', { d: lrn, class: 's1', fill: 'none', 'stroke-width': 2, 'stroke-dasharray': DASH[1] }),
    s('text', { x: x(to) + 6, y: y(last.learned_seconds) + (close ? 12 : 4) }, `learned ${secs(last.learned_seconds)}`));
  if (!lrn) g.append(s('text', { x: x(to) + 6, y: idleTop + idleH }, 'learned: none'));
  for (const [t, v] of reuseAges) {
    if (t < from) continue;
    g.append(s('circle', { class: 'reuse', cx: x(t), cy: y(v), r: 3.5 }));
  }
  g.append(s('line', { class: 'axis', x1: pad.l, x2: pad.l + w, y1: idleTop + idleH, y2: idleTop + idleH }));
  return s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title }, s('title', {}, title), g);
}

// reuseText labels a reuse mark: its idle age, and how many reuses it stands for.
export function reuseText(m) {
  return (m.idle_age_seconds < 0 ? '?' : secs(m.idle_age_seconds)) + (m.count > 1 ? ` ×${m.count}` : '');
}

export function secs(v) {
  if (v === 0) return '0 s';
  if (v < 0.001) return '<1 ms';
  if (v < 1) return `${Math.round(v * 1000)} ms`;
  return `${Math.round(v * 100) / 100} s`;
}

export function connText(c) {
  let t = `connection #${c.id}: opened ${clock(Date.parse(c.opened))}, ${c.requests_served} requests`;
  if (c.reuses.length) t += `, reuses at idle ${c.reuses.map(reuseText).join(', ')}`;
  if (c.closed) t += `, closed ${clock(Date.parse(c.closed))}: ${c.reason}` + (c.closed_idle_seconds ? ` after ${secs(c.closed_idle_seconds)} idle` : '');
  else t += `, ${c.state === 'in_use' ? 'in use' : 'idle'} now`;
  return t;
}
