// User groups (system administrators): the directory's groups (by DN, checked with it) and the
// provider's (by name), made members of projects as one; renamed and deleted here.

import { h, fill, table, dialog, confirmed, field, toast, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

export const GROUP_TYPES = { 1: 'LDAP', 2: 'HTTP', 3: 'OIDC' };

export async function groupsPage() {
  const results = h('div', {}, loading());

  async function load() {
    try {
      const { items } = await api.list('/usergroups', 1, 100);
      fill(results, table([
        { title: 'Name', cell: (g) => g.group_name },
        { title: 'Type', cell: (g) => GROUP_TYPES[g.group_type] || String(g.group_type) },
        { title: 'LDAP group DN', wide: true, cell: (g) => g.ldap_group_dn || '' },
        { title: 'Actions', cell: (g) => h('div', { class: 'toolbar' },
          h('button', { type: 'button', class: 'small', 'aria-label': `Rename group ${g.group_name}`, on: { click: () => rename(g) } }, 'Rename'),
          h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete group ${g.group_name}`, on: { click: () => remove(g) } }, 'Delete')) },
      ], items, 'No user groups yet.'));
    } catch (error) { fill(results, errorBox(error)); }
  }

  async function create() {
    const made = await dialog('New group', h('div', {},
      field('Type', { name: 'type', options: [['1', 'LDAP'], ['3', 'OIDC']], value: '1' }),
      field('LDAP group DN (LDAP groups)', { name: 'dn', autocomplete: 'off', placeholder: 'cn=developers,ou=groups,dc=example,dc=org' }),
      field('Name (the directory\'s when left empty)', { name: 'name', autocomplete: 'off' })),
    'Create', async (form) => {
      const e = form.elements;
      const type = Number(e.type.value);
      const body = { group_type: type, group_name: e.name.value.trim(), ldap_group_dn: e.dn.value.trim() };
      if (type === 1 && !body.ldap_group_dn) throw new Error('Enter the DN of the LDAP group.');
      if (type !== 1 && !body.group_name) throw new Error('Enter the name the provider gives the group.');
      if (type !== 1) body.ldap_group_dn = '';
      await api.change('POST', '/usergroups', body);
      return body.group_name || body.ldap_group_dn;
    });
    if (made) { toast(`Group ${made} created`); load(); }
  }

  async function rename(g) {
    const saved = await dialog(`Rename group ${g.group_name}`,
      field('Name', { name: 'name', value: g.group_name, required: true, autocomplete: 'off' }),
      'Save', async (form) => {
        const name = form.elements.name.value.trim();
        if (!name) throw new Error('Enter a name.');
        await api.change('PUT', `/usergroups/${g.id}`, { group_name: name });
        return name;
      });
    if (saved) { toast(`Renamed to ${saved}`); load(); }
  }

  function remove(g) {
    return confirmed('Delete group', `Delete the group ${g.group_name}? Its memberships of projects go with it.`,
      () => api.change('DELETE', `/usergroups/${g.id}`), `Deleted ${g.group_name}`, load);
  }

  load();
  return h('div', {}, h('h1', {}, 'Groups'),
    h('p', { class: 'hint' }, 'People belong to a group when the LDAP directory or the OIDC provider says so at their sign-in.'),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: create } }, 'New group')),
    results);
}
