// The audit log: every push, pull, delete, account change and login, filtered and paged.

import { h, fill, table, pager, when, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const PAGE_SIZE = 15;
const OPERATIONS = [['', 'Any operation'], ['create', 'create'], ['delete', 'delete'], ['pull', 'pull'], ['update', 'update'], ['login', 'login']];

export function auditPage(ctx) {
  return h('div', {}, h('h1', {}, 'Audit log'), auditTable('/audit-logs'));
}

/** The filters and the table of an audit listing at `path`. */
export function auditTable(path) {
  const state = { page: 1 };
  const results = h('div', {}, loading());
  const operation = h('select', { 'aria-label': 'Operation' }, OPERATIONS.map(([v, t]) => h('option', { value: v }, t)));
  const resource = h('input', { type: 'search', placeholder: 'Resource contains', 'aria-label': 'Resource contains' });
  const user = h('input', { type: 'search', placeholder: 'User name', 'aria-label': 'User name' });
  const apply = () => { state.page = 1; load(); };
  operation.addEventListener('change', apply);
  let timer = null;
  for (const input of [resource, user]) input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(apply, 300); });

  async function load() {
    const q = [];
    if (operation.value) q.push(`operation=${operation.value}`);
    if (resource.value.trim()) q.push(`resource=~${resource.value.trim()}`);
    if (user.value.trim()) q.push(`username=${user.value.trim()}`);
    try {
      const { items, total } = await api.list(path, state.page, PAGE_SIZE, q.length ? { q: q.join(',') } : {});
      fill(results,
        table([
          { title: 'User', cell: (r) => r.username },
          { title: 'Resource', cell: (r) => h('code', {}, r.resource) },
          { title: 'Type', wide: true, cell: (r) => r.resource_type },
          { title: 'Operation', cell: (r) => (r.count > 1 ? `${r.operation} ×${r.count}` : r.operation) },
          { title: 'Time', cell: (r) => when(r.op_time) },
          { title: 'Address', wide: true, cell: (r) => r.client_address || '' },
        ], items, 'No records match.'),
        pager(total, state.page, PAGE_SIZE, (page) => { state.page = page; load(); }));
    } catch (error) { fill(results, errorBox(error)); }
  }

  load();
  return h('div', {}, h('div', { class: 'toolbar', role: 'search' }, operation, resource, user), results);
}
