// A project's webhooks: policies (endpoint, events, payload format, signing), their deliveries.

import { h, fill, table, dialog, confirmed, field, checkbox, toast, when, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const EVENTS = ['PUSH_ARTIFACT', 'PULL_ARTIFACT', 'DELETE_ARTIFACT', 'QUOTA_EXCEED', 'QUOTA_WARNING',
  'SCANNING_COMPLETED', 'SCANNING_FAILED', 'SCANNING_STOPPED', 'REPLICATION', 'TAG_RETENTION'];

export function webhooksTab(ctx, project, role) {
  const manage = role === 1;
  const base = `/projects/${encodeURIComponent(project.name)}/webhook/policies`;
  const results = h('div', {}, loading());

  async function load() {
    try {
      const { items } = await api.list(base, 1, 100);
      fill(results, table([
        { title: 'Name', cell: (p) => p.name },
        { title: 'Endpoint', cell: (p) => h('code', {}, (p.targets[0] || {}).address || '') },
        { title: 'Events', wide: true, cell: (p) => p.event_types.join(', ') },
        { title: 'Format', wide: true, cell: (p) => (p.targets[0] || {}).payload_format || 'Default' },
        { title: 'Enabled', cell: (p) => (p.enabled ? h('span', { class: 'badge ok' }, 'Enabled') : h('span', { class: 'badge' }, 'Disabled')) },
        { title: 'Actions', cell: (p) => h('div', { class: 'toolbar' },
          h('button', { type: 'button', class: 'small', on: { click: () => executions(p) } }, 'Deliveries'),
          manage ? h('button', { type: 'button', class: 'small', on: { click: () => toggle(p) } }, p.enabled ? 'Disable' : 'Enable') : null,
          manage ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete webhook ${p.name}`, on: { click: () => remove(p) } }, 'Delete') : null) },
      ], items, 'No webhooks.'));
    } catch (error) { fill(results, errorBox(error)); }
  }

  async function toggle(p) {
    try {
      await api.change('PUT', `${base}/${p.id}`, { ...p, enabled: !p.enabled });
      load();
    } catch (error) { toast(error.message, true); }
  }

  function remove(p) {
    return confirmed('Delete webhook', `Delete the webhook ${p.name}?`, () => api.change('DELETE', `${base}/${p.id}`), `Deleted ${p.name}`, load);
  }

  async function executions(p) {
    const { items } = await api.list(`${base}/${p.id}/executions`, 1, 20).catch((e) => ({ items: [], error: e }));
    await dialog(`Deliveries of ${p.name}`, table([
      { title: 'Event', cell: (x) => x.extra_attrs.event_type || '' },
      { title: 'Status', cell: (x) => x.status },
      { title: 'Attempts', num: true, cell: (x) => x.extra_attrs.attempts },
      { title: 'Response', cell: (x) => (x.extra_attrs.response_code ?? '—') },
      { title: 'Started', cell: (x) => when(x.start_time) },
    ], items, 'No deliveries yet.'), null, null);
  }

  function body() {
    return h('div', {},
      field('Name', { name: 'name', required: true, autocomplete: 'off' }),
      field('Endpoint URL', { name: 'address', type: 'url', required: true, placeholder: 'https://hooks.example.com/registry' }),
      field('Authorization header (optional)', { name: 'auth', autocomplete: 'off' }, 'Sent as is; kept encrypted.'),
      field('Signing secret (optional)', { name: 'secret', autocomplete: 'off' }, 'Signs each body: X-Registry-Signature-256 (HMAC-SHA256).'),
      field('Payload format', { name: 'format', options: [['Default', 'Harbor JSON'], ['CloudEvents', 'CloudEvents 1.0']], value: 'Default' }),
      checkbox('Skip certificate verification', 'skip'),
      h('fieldset', {}, h('legend', {}, 'Events'), EVENTS.map((e) => checkbox(e, `ev-${e}`, e === 'PUSH_ARTIFACT'))));
  }

  async function create() {
    const made = await dialog('New webhook', body(), 'Create', async (form) => {
      const v = (k) => form.elements[k].value.trim();
      if (!v('name') || !v('address')) throw new Error('A name and an endpoint URL are required.');
      const events = EVENTS.filter((e) => form.elements[`ev-${e}`].checked);
      if (!events.length) throw new Error('Choose at least one event.');
      const target = { type: 'http', address: v('address'), auth_header: v('auth'), skip_cert_verify: form.elements.skip.checked, payload_format: v('format') };
      const policy = { name: v('name'), enabled: true, event_types: events, targets: [target] };
      if (v('secret')) policy.secret = v('secret');
      await api.change('POST', base, policy);
      return v('name');
    });
    if (made) { toast(`Created webhook ${made}`); load(); }
  }

  load();
  return h('div', {},
    manage ? h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: create } }, 'New webhook')) : null,
    results);
}
