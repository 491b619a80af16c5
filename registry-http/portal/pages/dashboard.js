// The dashboard: pushes and pulls over time (from the event stream) and storage by project, as
// charts drawn in SVG.

import { h, fill, size, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const W = 560;

export async function dashboardPage(ctx) {
  const activity = h('div', { class: 'panel chart' }, loading());
  const storage = h('div', { class: 'panel chart' }, loading());
  const counts = h('p', { class: 'hint' });
  api.get('/statistics').then((s) => fill(counts,
    `${s.total_project_count} project(s) (${s.public_project_count} public) · ${s.total_repo_count} repositories`)).catch(() => {});
  api.get('/statistics/activity?days=14').then((a) => fill(activity, activityChart(a))).catch((e) => fill(activity, errorBox(e)));
  loadStorage(storage);
  return h('div', {},
    h('h1', {}, 'Dashboard'), counts,
    h('div', { class: 'charts' }, activity, storage),
    h('p', { class: 'hint' }, 'Vulnerabilities by severity appear here once a scanner is configured.'));
}

function activityChart(a) {
  const days = a.days;
  const H = 220, pad = 34, bottom = 30;
  const max = Math.max(1, ...days.map((d) => Math.max(d.push, d.pull)));
  const slot = (W - pad) / days.length;
  const bar = Math.max(2, slot / 2 - 2);
  const y = (v) => H - bottom - (v / max) * (H - bottom - 10);
  const items = [];
  for (const [i, d] of days.entries()) {
    const x = pad + i * slot;
    items.push(h('rect', { class: 'bar-push', x, y: y(d.push), width: bar, height: H - bottom - y(d.push) },
      h('title', {}, `${d.date}: ${d.push} push(es)`)));
    items.push(h('rect', { class: 'bar-pull', x: x + bar + 1, y: y(d.pull), width: bar, height: H - bottom - y(d.pull) },
      h('title', {}, `${d.date}: ${d.pull} pull(s)`)));
    if (i % 2 === 0) items.push(h('text', { x, y: H - bottom + 14 }, d.date.slice(5)));
  }
  items.push(h('text', { x: 0, y: 14 }, String(max)));
  items.push(h('text', { x: 0, y: H - bottom }, '0'));
  items.push(h('line', { x1: pad, x2: W, y1: H - bottom, y2: H - bottom, stroke: '#d9dee7' }));
  const totals = days.reduce((t, d) => [t[0] + d.push, t[1] + d.pull], [0, 0]);
  return [
    h('h2', {}, 'Pushes and pulls, last 14 days'),
    h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Pushes and pulls per day: ${totals[0]} pushes and ${totals[1]} pulls in 14 days` }, items),
    h('div', { class: 'legend' },
      h('span', {}, h('span', { class: 'swatch bar-push' }), `Pushes (${totals[0]})`),
      h('span', {}, h('span', { class: 'swatch bar-pull' }), `Pulls (${totals[1]})`),
      a.sampled ? h('span', {}, 'from the newest 50,000 events') : null),
  ];
}

async function loadStorage(el) {
  try {
    const { items } = await api.list('/projects', 1, 20);
    const rows = [];
    for (const p of items) {
      const summary = await api.get(`/projects/${encodeURIComponent(p.name)}/summary`);
      rows.push([p.name, summary.quota.used.storage]);
    }
    rows.sort((a, b) => b[1] - a[1]);
    fill(el, storageChart(rows));
  } catch (error) { fill(el, errorBox(error)); }
}

function storageChart(rows) {
  const line = 26, label = 130, H = Math.max(1, rows.length) * line + 10;
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const items = rows.flatMap(([name, bytes], i) => {
    const width = Math.max(1, (bytes / max) * (W - label - 90));
    const yy = i * line + 6;
    return [
      h('text', { x: 0, y: yy + 14 }, name.length > 18 ? `${name.slice(0, 17)}…` : name),
      h('rect', { class: 'bar-store', x: label, y: yy, width, height: line - 8 }, h('title', {}, `${name}: ${size(bytes)}`)),
      h('text', { x: label + width + 6, y: yy + 14 }, size(bytes)),
    ];
  });
  return [
    h('h2', {}, 'Storage by project'),
    rows.length
      ? h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Storage by project: ${rows.map(([n, b]) => `${n} ${size(b)}`).join(', ')}` }, items)
      : h('p', { class: 'hint' }, 'No projects yet.'),
  ];
}
