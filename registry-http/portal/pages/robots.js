// A project's robot accounts: created with permissions and an expiry; the secret is shown once.

import { h, fill, table, dialog, confirmed, field, checkbox, when, errorBox, loading, copyButton } from '../dom.js';
import * as api from '../api.js';

const ACTIONS = [['pull', 'Pull'], ['push', 'Push'], ['delete', 'Delete']];

export function robotsTab(ctx, project) {
  const results = h('div', {}, loading());

  async function load() {
    try {
      const { items } = await api.list(`/robots?q=${encodeURIComponent(`Level=project,ProjectID=${project.project_id}`)}`, 1, 100);
      fill(results, table([
        { title: 'Name', cell: (r) => h('code', {}, r.name) },
        { title: 'Permissions', cell: (r) => (r.permissions || []).flatMap((p) => (p.access || []).map((a) => a.action)).join(', ') },
        { title: 'Expires', cell: (r) => (r.expires_at === -1 ? 'Never' : when(new Date(r.expires_at * 1000).toISOString())) },
        { title: 'Description', wide: true, cell: (r) => r.description || '' },
        { title: 'Actions', cell: (r) => h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete robot ${r.name}`, on: { click: () => remove(r) } }, 'Delete') },
      ], items, 'No robot accounts.'));
    } catch (error) { fill(results, errorBox(error)); }
  }

  function remove(r) {
    return confirmed('Delete robot account', `Delete ${r.name}? Clients using its secret will be refused.`,
      () => api.change('DELETE', `/robots/${r.id}`), `Deleted ${r.name}`, load);
  }

  async function create() {
    const made = await dialog('New robot account', h('div', {},
      field('Name', { name: 'name', required: true, autocomplete: 'off' }, `Its account will be robot$${project.name}+NAME.`),
      field('Description', { name: 'description' }),
      field('Expires after (days; -1 for never)', { name: 'duration', type: 'number', value: '30', min: '-1' }),
      h('fieldset', {}, h('legend', {}, 'Permissions on the repositories of this project'),
        ACTIONS.map(([action, text]) => checkbox(text, `perm-${action}`, action === 'pull')))),
    'Create', async (form) => {
      const name = form.elements.name.value.trim();
      if (!name) throw new Error('Enter a name for the robot account.');
      const duration = Number(form.elements.duration.value);
      if (!Number.isInteger(duration) || duration === 0 || duration < -1) throw new Error('Expiry: a number of days, or -1 for never.');
      const access = ACTIONS.filter(([a]) => form.elements[`perm-${a}`].checked).map(([action]) => ({ resource: 'repository', action }));
      if (!access.length) throw new Error('Choose at least one permission.');
      return api.change('POST', '/robots', {
        name, description: form.elements.description.value, level: 'project', duration,
        permissions: [{ kind: 'project', namespace: project.name, access }],
      });
    });
    if (!made) return;
    load();
    await dialog('Robot account created', h('div', {},
      h('p', {}, 'Copy the secret now: it is shown only this once.'),
      h('p', {}, 'Account: ', h('code', { 'data-testid': 'robot-name' }, made.name), ' ', copyButton(made.name, 'Copy name')),
      h('div', { class: 'secret' }, h('code', { 'data-testid': 'robot-secret' }, made.secret), copyButton(made.secret, 'Copy secret'))),
    null, null);
  }

  load();
  return h('div', {},
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: create } }, 'New robot account')),
    results);
}
