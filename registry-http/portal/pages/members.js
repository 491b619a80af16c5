// A project's members: users added by name, groups by name (one of the user groups) or by an LDAP
// group's DN, each with a role; roles changed and members removed by the project's admins.

import { h, fill, table, dialog, confirmed, field, toast, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const ROLE_OPTIONS = [[1, 'Project Admin'], [4, 'Maintainer'], [2, 'Developer'], [3, 'Guest'], [5, 'Limited Guest']];

export function membersTab(ctx, project, role) {
  const manage = role === 1;
  const results = h('div', {}, loading());
  const path = `/projects/${encodeURIComponent(project.name)}/members`;

  async function load() {
    try {
      const { items } = await api.list(path, 1, 100);
      fill(results, table([
        { title: 'Name', cell: (m) => m.entity_name },
        { title: 'Type', cell: (m) => (m.entity_type === 'g' ? 'Group' : 'User') },
        { title: 'Role', cell: (m) => (manage ? roleSelect(m) : api.ROLES[m.role_id] || m.role_name) },
        { title: 'Actions', cell: (m) => (manage
          ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Remove member ${m.entity_name}`, on: { click: () => remove(m) } }, 'Remove')
          : '') },
      ], items, 'No members.'));
    } catch (error) { fill(results, errorBox(error)); }
  }

  function roleSelect(m) {
    const select = h('select', { 'aria-label': `Role of ${m.entity_name}` },
      ROLE_OPTIONS.map(([id, text]) => h('option', { value: id, selected: id === m.role_id }, text)));
    select.addEventListener('change', async () => {
      try {
        await api.change('PUT', `${path}/${m.id}`, { role_id: Number(select.value) });
        toast(`${m.entity_name} is now ${api.ROLES[select.value]}`);
      } catch (error) { toast(error.message, true); load(); }
    });
    return select;
  }

  function remove(m) {
    return confirmed('Remove member', `Remove ${m.entity_name} from ${project.name}?`,
      () => api.change('DELETE', `${path}/${m.id}`), `Removed ${m.entity_name}`, load, 'Remove');
  }

  async function add() {
    const added = await dialog('Add member', h('div', {},
      field('User name', { name: 'username', required: true, autocomplete: 'off' }),
      field('Role', { name: 'role', options: ROLE_OPTIONS.map(([id, text]) => [String(id), text]), value: '2' })),
    'Add', async (form) => {
      const username = form.elements.username.value.trim();
      if (!username) throw new Error('Enter the user name of the member to add.');
      await api.change('POST', path, { role_id: Number(form.elements.role.value), member_user: { username } });
      return username;
    });
    if (added) { toast(`Added ${added}`); load(); }
  }

  async function addGroup() {
    const added = await dialog('Add group', h('div', {},
      field('Group name, or an LDAP group\'s DN', { name: 'group', required: true, autocomplete: 'off' }),
      field('Role', { name: 'role', options: ROLE_OPTIONS.map(([id, text]) => [String(id), text]), value: '2' })),
    'Add', async (form) => {
      const group = form.elements.group.value.trim();
      if (!group) throw new Error('Enter the name of a user group, or the DN of an LDAP group.');
      let member_group;
      if (group.includes('=')) {
        member_group = { group_type: 1, ldap_group_dn: group };
      } else {
        const { items } = await api.list('/usergroups/search', 1, 100, { groupname: group });
        const found = items.find((g) => g.group_name === group);
        if (!found) throw new Error(`No user group is named ${group}: a system administrator makes it under Groups.`);
        member_group = { id: found.id };
      }
      await api.change('POST', path, { role_id: Number(form.elements.role.value), member_group });
      return group;
    });
    if (added) { toast(`Added ${added}`); load(); }
  }

  load();
  return h('div', {},
    manage ? h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'primary', on: { click: add } }, 'Add member'),
      h('button', { type: 'button', on: { click: addGroup } }, 'Add group')) : null,
    results);
}
