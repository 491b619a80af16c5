// Scanners (system administrators): the registered scanner adapters with their health, adding
// one (tested before it is kept), making one the default, disabling and deleting; the scan of
// everything (now, or on a schedule) with its progress; and the system's CVE allowlist.

import { h, fill, table, dialog, confirmed, field, checkbox, toast, when, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const AUTHS = [['', 'None'], ['Basic', 'Basic (user:password)'], ['Bearer', 'Bearer token'], ['X-ScannerAdapter-API-Key', 'API key']];
const SCHEDULES = [['None', 'None'], ['Hourly', 'Hourly'], ['Daily', 'Daily'], ['Weekly', 'Weekly'], ['Custom', 'Custom (cron)']];

export async function scannersPage() {
  const list = h('div', {}, loading());
  const scanAll = h('div', { class: 'panel' }, loading());
  const allow = h('div', { class: 'panel' }, loading());

  async function load() {
    try {
      const { items } = await api.list('/scanners', 1, 100);
      const rows = await Promise.all(items.map((s) => api.get(`/scanners/${s.uuid}`).catch(() => s)));
      fill(list, table([
        { title: 'Name', cell: (s) => [h('strong', {}, s.name), s.is_default ? h('span', { class: 'badge ok' }, 'Default') : null,
          s.disabled ? h('span', { class: 'badge' }, 'Disabled') : null, s.description ? h('div', { class: 'hint' }, s.description) : null] },
        { title: 'Adapter', cell: (s) => h('code', {}, s.url) },
        { title: 'Health', cell: health },
        { title: 'Scanner', cell: (s) => (s.adapter ? `${s.adapter} ${s.version} (${s.vendor})` : '—') },
        { title: 'Auth', cell: (s) => s.auth || 'None' },
        { title: 'Actions', cell: actions },
      ], rows, 'No scanner yet. Add one: a Trivy adapter, for example (see the README).', 'Scanners'));
    } catch (error) { fill(list, errorBox(error)); }
  }

  function health(s) {
    if (s.health === 'healthy') return h('span', { class: 'badge ok' }, 'Healthy');
    if (s.health === 'unhealthy') return [h('span', { class: 'badge bad' }, 'Unhealthy'), h('div', { class: 'hint' }, s.error || '')];
    return '—';
  }

  function actions(s) {
    return h('div', { class: 'toolbar' },
      s.is_default ? null : h('button', { type: 'button', class: 'small', 'aria-label': `Make ${s.name} the default`, on: { click: () => makeDefault(s) } }, 'Make default'),
      h('button', { type: 'button', class: 'small', 'aria-label': `${s.disabled ? 'Enable' : 'Disable'} ${s.name}`, on: { click: () => toggle(s) } }, s.disabled ? 'Enable' : 'Disable'),
      h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete scanner ${s.name}`, on: { click: () => remove(s) } }, 'Delete'));
  }

  async function makeDefault(s) {
    try { await api.change('PATCH', `/scanners/${s.uuid}`, { is_default: true }); toast(`${s.name} is the default scanner`); load(); } catch (e) { toast(e.message, true); }
  }

  async function toggle(s) {
    try { await api.change('PUT', `/scanners/${s.uuid}`, { disabled: !s.disabled }); toast(`${s.name} ${s.disabled ? 'enabled' : 'disabled'}`); load(); } catch (e) { toast(e.message, true); }
  }

  function remove(s) {
    return confirmed('Delete scanner', `Delete the scanner ${s.name}? Projects that chose it fall back to the default.`,
      () => api.change('DELETE', `/scanners/${s.uuid}`), `Deleted ${s.name}`, load);
  }

  function settingsOf(form) {
    const el = form.elements;
    const body = { name: el.name.value.trim(), url: el.url.value.trim(), auth: el.auth.value, description: el.description.value.trim(),
      skip_certVerify: el.skip.checked };
    if (el.credential.value) body.access_credential = el.credential.value;
    if (!body.name) throw new Error('Enter a name.');
    if (!/^https?:\/\//.test(body.url)) throw new Error('Enter the adapter\'s URL: http://host:port');
    return body;
  }

  async function add() {
    const body = h('div', {},
      field('Name', { name: 'name', required: true, autocomplete: 'off' }),
      field('Description', { name: 'description' }),
      field('Adapter URL', { name: 'url', required: true, placeholder: 'http://trivy-adapter:8080' }, 'The registry calls <URL>/api/v1/…'),
      field('Authentication', { name: 'auth', options: AUTHS, value: '' }),
      field('Credential', { name: 'credential', type: 'password', autocomplete: 'off' }, 'user:password for Basic; the token or key otherwise. Kept encrypted.'),
      checkbox('Skip verifying the adapter\'s certificate', 'skip'));
    const test = h('button', { type: 'button', class: 'small' }, 'Test connection');
    body.append(test);
    test.addEventListener('click', async () => {
      try {
        const m = await api.change('POST', '/scanners/ping', settingsOf(test.form));
        toast(`Reached ${m.scanner.name} ${m.scanner.version}`);
      } catch (e) { toast(e.message, true); }
    });
    const made = await dialog('Add a scanner', body, 'Add', async (form) => {
      await api.change('POST', '/scanners', settingsOf(form));
      return form.elements.name.value.trim();
    });
    if (made) { toast(`Added ${made}`); load(); }
  }

  async function loadScanAll() {
    try {
      const [schedule, metrics] = await Promise.all([api.get('/system/scanAll/schedule'), api.get('/scans/all/metrics')]);
      const kind = h('select', { name: 'kind', 'aria-label': 'Schedule' }, SCHEDULES.map(([v, t]) => h('option', { value: v, selected: v === schedule.schedule.type }, t)));
      const cron = h('input', { name: 'cron', value: schedule.schedule.cron || '', placeholder: '0 0 2 * * *', 'aria-label': 'Cron (six fields)' });
      const save = h('button', { type: 'button', class: 'small' }, 'Save schedule');
      const now = h('button', { type: 'button', class: 'primary' }, 'Scan now');
      const stop = h('button', { type: 'button', class: 'small danger' }, 'Stop');
      save.addEventListener('click', async () => {
        try { await api.change('PUT', '/system/scanAll/schedule', { schedule: { type: kind.value, cron: cron.value.trim() } }); toast('Schedule saved'); loadScanAll(); } catch (e) { toast(e.message, true); }
      });
      now.addEventListener('click', async () => {
        try { await api.change('POST', '/system/scanAll/schedule', { schedule: { type: 'Manual' } }); toast('Scanning everything'); loadScanAll(); } catch (e) { toast(e.message, true); }
      });
      stop.addEventListener('click', async () => {
        try { await api.change('POST', '/system/scanAll/stop', {}); toast('Stopped'); loadScanAll(); } catch (e) { toast(e.message, true); }
      });
      const counts = Object.entries(metrics.metrics || {}).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(', ');
      fill(scanAll,
        h('h2', {}, 'Scan everything'),
        h('p', {}, metrics.total ? `Last run (${(metrics.trigger || '').toLowerCase()}): ${metrics.completed} of ${metrics.total} scans done${counts ? ` — ${counts}` : ''}${metrics.ongoing ? ', still running' : ''}.` : 'Never run.'),
        h('div', { class: 'toolbar' }, now, metrics.ongoing ? stop : null),
        h('div', { class: 'toolbar' }, h('label', { class: 'inline' }, 'Schedule ', kind), cron, save),
        schedule.schedule.next_scheduled_time ? h('p', { class: 'hint' }, `Next run ${when(schedule.schedule.next_scheduled_time)}`) : null);
    } catch (error) { fill(scanAll, errorBox(error)); }
  }

  async function loadAllowlist() {
    try {
      const list = await api.get('/system/CVEAllowlist');
      const ids = h('textarea', { name: 'cves', rows: 5, 'aria-label': 'Allowed CVEs, one per line' }, (list.items || []).map((i) => i.cve_id).join('\n'));
      const expires = h('input', { type: 'date', name: 'expires', 'aria-label': 'Expires on',
        value: list.expires_at ? new Date(list.expires_at * 1000).toISOString().slice(0, 10) : '' });
      const save = h('button', { type: 'button', class: 'primary' }, 'Save allowlist');
      save.addEventListener('click', async () => {
        const items = ids.value.split(/[\s,]+/).filter(Boolean).map((cve_id) => ({ cve_id }));
        const at = expires.value ? Math.floor(new Date(`${expires.value}T00:00:00Z`).getTime() / 1000) : null;
        try { await api.change('PUT', '/system/CVEAllowlist', { items, expires_at: at }); toast('Allowlist saved'); } catch (e) { toast(e.message, true); }
      });
      fill(allow, h('h2', {}, 'System CVE allowlist'),
        h('p', { class: 'hint' }, 'CVEs listed here do not stop pulls in projects that prevent vulnerable images and use the system allowlist.'),
        ids, h('div', { class: 'toolbar' }, h('label', { class: 'inline' }, 'Expires on ', expires), save));
    } catch (error) { fill(allow, errorBox(error)); }
  }

  load();
  loadScanAll();
  loadAllowlist();
  return h('div', {}, h('h1', {}, 'Scanners'),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: add } }, 'Add scanner')),
    list, scanAll, allow);
}
