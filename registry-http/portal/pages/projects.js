// Projects: the ones the user can see, with their access, the user's role and repositories.

import { h, fill, table, pager, dialog, confirmed, filterBox, field, checkbox, toast, when, usage, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const PAGE_SIZE = 15;

export async function projectsPage(ctx) {
  const state = { page: 1, name: '' };
  const results = h('div', {}, loading());
  const filter = filterBox('Filter projects by name', (text) => { state.name = text; state.page = 1; load(); });

  async function load() {
    try {
      const query = state.name ? { name: state.name } : {};
      const { items, total } = await api.list('/projects', state.page, PAGE_SIZE, query);
      fill(results,
        table([
          { title: 'Name', cell: (p) => h('a', { href: `#/projects/${encodeURIComponent(p.name)}` }, p.name) },
          { title: 'Access', cell: (p) => (p.metadata.public === 'true' ? h('span', { class: 'badge ok' }, 'Public') : h('span', { class: 'badge' }, 'Private')) },
          { title: 'Your role', cell: (p) => api.ROLES[p.current_user_role_id] || (ctx.user.sysadmin_flag ? 'System admin' : '—') },
          { title: 'Repositories', num: true, cell: (p) => p.repo_count },
          { title: 'Storage', wide: true, cell: storageCell },
          { title: 'Created', wide: true, cell: (p) => when(p.creation_time) },
          { title: 'Actions', cell: (p) => (canManage(ctx, p)
            ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete project ${p.name}`, on: { click: () => remove(p) } }, 'Delete')
            : '') },
        ], items, state.name ? 'No project matches the filter.' : 'No projects yet.'),
        pager(total, state.page, PAGE_SIZE, (page) => { state.page = page; load(); }));
    } catch (error) {
      fill(results, errorBox(error));
    }
  }

  /** The project's storage against its quota, filled in when its summary answers. */
  function storageCell(p) {
    const cell = h('span', { class: 'hint' }, '…');
    api.get(`/projects/${encodeURIComponent(p.name)}/summary`)
      .then((s) => fill(cell, usage(s.quota.used.storage, s.quota.hard.storage)))
      .catch(() => fill(cell, '—'));
    return cell;
  }

  function remove(p) {
    return confirmed('Delete project', `Delete the project ${p.name}? It must hold no repositories.`,
      () => api.change('DELETE', `/projects/${encodeURIComponent(p.name)}`), `Deleted project ${p.name}`, load);
  }

  async function create() {
    // System admins may make a proxy cache of a registry (Administration > Registries).
    const registries = ctx.user.sysadmin_flag ? await api.list('/registries', 1, 100).then((r) => r.items).catch(() => []) : [];
    const proxy = registries.length
      ? field('Proxy cache of', { name: 'registry', options: [['', 'None: an ordinary project'], ...registries.map((r) => [String(r.id), `${r.name} (${r.url})`])], value: '' },
        'Pulls that miss are fetched from that registry and cached; pushes are refused.')
      : null;
    const created = await dialog('New project',
      h('div', {}, field('Project name', { name: 'name', required: true, autocomplete: 'off' },
        'Lower-case letters, digits and . _ - ; it begins every repository name in it.'),
      checkbox('Public: anyone may pull, without signing in', 'public'), proxy),
      'Create', async (form) => {
        const name = form.elements.name.value.trim();
        if (!name) throw new Error('Enter a name for the project.');
        const body = { project_name: name, metadata: { public: form.elements.public.checked ? 'true' : 'false' } };
        if (form.elements.registry && form.elements.registry.value) body.registry_id = Number(form.elements.registry.value);
        await api.change('POST', '/projects', body);
        return name;
      });
    if (created) { toast(`Created project ${created}`); ctx.go(`/projects/${encodeURIComponent(created)}`); }
  }

  load();
  return h('div', {},
    h('h1', {}, 'Projects'),
    h('div', { class: 'toolbar' }, filter, h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'primary', on: { click: create } }, 'New project')),
    results);
}

/** Whether the user administers the project. */
export function canManage(ctx, project) {
  return ctx.user.sysadmin_flag || project.current_user_role_id === 1;
}
