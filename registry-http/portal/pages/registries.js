// Registries (system administrators): the other registries this one talks to — distribution,
// zot, Docker Hub-compatible registries, other instances of this registry or Harbor — with their
// health and why a remote is unhealthy; adding one (tested first), editing, deleting.

import { h, fill, table, dialog, confirmed, field, checkbox, toast, when, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const TYPES = [['docker-registry', 'Docker registry (distribution, zot, …)'], ['harbor', 'Harbor (or this registry)']];

export async function registriesPage() {
  const list = h('div', {}, loading());

  async function load() {
    try {
      const { items } = await api.list('/registries', 1, 100);
      fill(list, table([
        { title: 'Name', cell: (r) => [h('strong', {}, r.name), r.description ? h('div', { class: 'hint' }, r.description) : null] },
        { title: 'URL', cell: (r) => h('code', {}, r.url) },
        { title: 'Type', cell: (r) => r.type },
        { title: 'Health', cell: health },
        { title: 'Credential', cell: (r) => (r.credential && r.credential.access_key) || 'Anonymous' },
        { title: 'Verify TLS', cell: (r) => (r.insecure ? 'No' : 'Yes') },
        { title: 'Created', wide: true, cell: (r) => when(r.creation_time) },
        { title: 'Actions', cell: actions },
      ], items, 'No registry yet. Add one to replicate with it or to cache it.', 'Registries'));
    } catch (error) { fill(list, errorBox(error)); }
  }

  function health(r) {
    if (r.status === 'healthy') return h('span', { class: 'badge ok' }, 'Healthy');
    if (r.status === 'unhealthy') return [h('span', { class: 'badge bad' }, 'Unhealthy'), h('div', { class: 'hint' }, r.status_message || '')];
    return '—';
  }

  function actions(r) {
    return h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'small', 'aria-label': `Edit registry ${r.name}`, on: { click: () => edit(r) } }, 'Edit'),
      h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete registry ${r.name}`, on: { click: () => remove(r) } }, 'Delete'));
  }

  function remove(r) {
    return confirmed('Delete registry', `Delete the registry ${r.name}?`,
      () => api.change('DELETE', `/registries/${r.id}`), `Deleted ${r.name}`, load);
  }

  function settingsOf(form) {
    const el = form.elements;
    const body = { name: el.name.value.trim(), type: el.type.value, url: el.url.value.trim(), description: el.description.value.trim(),
      insecure: el.insecure.checked, ca_certificate: el.ca.value.trim(), access_key: el.user.value.trim() };
    if (el.secret.value) body.access_secret = el.secret.value;
    if (!body.name) throw new Error('Enter a name.');
    if (!/^https?:\/\//.test(body.url)) throw new Error('Enter the registry\'s URL: https://host[:port]');
    return body;
  }

  function form(r = {}) {
    const cred = r.credential || {};
    const body = h('div', {},
      field('Name', { name: 'name', required: true, autocomplete: 'off', value: r.name || '' }),
      field('Type', { name: 'type', options: TYPES, value: r.type || 'docker-registry' }),
      field('URL', { name: 'url', required: true, placeholder: 'https://registry.example.com', value: r.url || '' }, 'The registry\'s base URL: scheme, host and port.'),
      field('Description', { name: 'description', value: r.description || '' }),
      field('Access key (user)', { name: 'user', autocomplete: 'off', value: cred.access_key || '' }, 'Empty: anonymous.'),
      field('Access secret (password or token)', { name: 'secret', type: 'password', autocomplete: 'off' },
        r.id ? 'Leave empty to keep the stored one. Kept encrypted, never shown.' : 'Kept encrypted, never shown.'),
      checkbox('Skip verifying the registry\'s certificate', 'insecure', !!r.insecure),
      h('div', { class: 'field' }, h('label', { for: 'reg-ca' }, 'CA certificate (PEM, optional)'),
        h('textarea', { id: 'reg-ca', name: 'ca', rows: 3, placeholder: '-----BEGIN CERTIFICATE-----' }, r.ca_certificate || '')));
    const test = h('button', { type: 'button', class: 'small' }, 'Test connection');
    body.append(test);
    test.addEventListener('click', async () => {
      try {
        await api.change('POST', '/registries/ping', { ...(r.id ? { id: r.id } : {}), ...settingsOf(test.form) });
        toast('The registry answers and accepts the credential');
      } catch (e) { toast(e.message, true); }
    });
    return body;
  }

  async function add() {
    const made = await dialog('Add a registry', form(), 'Add', async (f) => {
      await api.change('POST', '/registries', settingsOf(f));
      return f.elements.name.value.trim();
    });
    if (made) { toast(`Added ${made}`); load(); }
  }

  async function edit(r) {
    const saved = await dialog(`Edit ${r.name}`, form(r), 'Save', async (f) => {
      await api.change('PUT', `/registries/${r.id}`, settingsOf(f));
      return f.elements.name.value.trim();
    });
    if (saved) { toast(`Saved ${saved}`); load(); }
  }

  load();
  return h('div', {}, h('h1', {}, 'Registries'),
    h('p', { class: 'hint' }, 'Other registries this one replicates with or caches: their health is checked when this page is shown.'),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: add } }, 'Add registry')),
    list);
}
