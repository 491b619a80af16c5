// Users (system administrators only): create, make or unmake administrator, delete.

import { h, fill, table, pager, dialog, confirmed, filterBox, field, toast, when, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const PAGE_SIZE = 15;

export async function usersPage(ctx) {
  if (!ctx.user.sysadmin_flag) return h('div', {}, h('h1', {}, 'Users'), h('p', { class: 'error' }, 'Only system administrators manage users.'));
  const state = { page: 1, name: '' };
  const results = h('div', {}, loading());
  const filter = filterBox('Filter users by name', (text) => { state.name = text; state.page = 1; load(); });

  async function load() {
    try {
      const query = state.name ? { q: `username=~${state.name}` } : {};
      const { items, total } = await api.list('/users', state.page, PAGE_SIZE, query);
      fill(results,
        table([
          { title: 'User name', cell: (u) => u.username },
          { title: 'Administrator', cell: (u) => adminToggle(u) },
          { title: 'E-mail', wide: true, cell: (u) => u.email || '' },
          { title: 'Full name', wide: true, cell: (u) => u.realname || '' },
          { title: 'Created', wide: true, cell: (u) => when(u.creation_time) },
          { title: 'Actions', cell: (u) => (u.username === ctx.user.username ? h('span', { class: 'hint' }, 'you') : h('button', {
            type: 'button', class: 'small danger', 'aria-label': `Delete user ${u.username}`, on: { click: () => remove(u) } }, 'Delete')) },
        ], items, 'No users match.'),
        pager(total, state.page, PAGE_SIZE, (page) => { state.page = page; load(); }));
    } catch (error) { fill(results, errorBox(error)); }
  }

  function adminToggle(u) {
    const box = h('input', { type: 'checkbox', checked: u.sysadmin_flag, disabled: u.username === ctx.user.username,
      'aria-label': `${u.username} is a system administrator` });
    box.addEventListener('change', async () => {
      try {
        await api.change('PUT', `/users/${u.user_id}/sysadmin`, { sysadmin_flag: box.checked });
        toast(`${u.username} is ${box.checked ? 'now' : 'no longer'} an administrator`);
      } catch (error) { toast(error.message, true); box.checked = !box.checked; }
    });
    return box;
  }

  function remove(u) {
    return confirmed('Delete user', `Delete the user ${u.username}? Their memberships go with them.`,
      () => api.change('DELETE', `/users/${u.user_id}`), `Deleted ${u.username}`, load);
  }

  async function create() {
    const made = await dialog('New user', h('div', {},
      field('User name', { name: 'username', required: true, autocomplete: 'off' }),
      field('E-mail', { name: 'email', type: 'email', autocomplete: 'off' }),
      field('Full name', { name: 'realname', autocomplete: 'off' }),
      field('Password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password' }, 'At least 8 characters.')),
    'Create', async (form) => {
      const v = (k) => form.elements[k].value;
      if (!v('username').trim() || !v('password')) throw new Error('A user name and a password are required.');
      await api.change('POST', '/users', { username: v('username').trim(), email: v('email'), realname: v('realname'), password: v('password') });
      return v('username').trim();
    });
    if (made) { toast(`Created ${made}`); load(); }
  }

  async function changePassword() {
    const me = await api.get('/users/current');
    const done = await dialog('Change your password', h('div', {},
      field('Current password', { name: 'old', type: 'password', autocomplete: 'current-password' }),
      field('New password', { name: 'new', type: 'password', autocomplete: 'new-password' }, 'At least 8 characters.')),
    'Change', async (form) => {
      await api.change('PUT', `/users/${me.user_id}/password`, { old_password: form.elements.old.value, new_password: form.elements.new.value });
      return true;
    });
    if (done) toast('Password changed');
  }

  load();
  return h('div', {},
    h('h1', {}, 'Users'),
    h('div', { class: 'toolbar' }, filter, h('span', { class: 'spacer' }),
      h('button', { type: 'button', on: { click: changePassword } }, 'Change my password'),
      h('button', { type: 'button', class: 'primary', on: { click: create } }, 'New user')),
    results);
}
