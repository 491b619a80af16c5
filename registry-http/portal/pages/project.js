// One project: its storage against its quota, and its repositories, members, robot accounts,
// labels, tag immutability rules, tag retention, logs, webhooks and configuration, as tabs shown
// by the user's role (the API refuses the rest anyway).

import { h, fill, table, pager, confirmed, filterBox, field, checkbox, toast, when, usage, size, errorBox, loading } from '../dom.js';
import * as api from '../api.js';
import { membersTab } from './members.js';
import { robotsTab } from './robots.js';
import { auditTable } from './audit.js';
import { webhooksTab } from './webhooks.js';
import { immutabilityTab } from './immutability.js';
import { labelsTab } from './labels.js';
import { retentionTab } from './retention.js';
import { securityPanelOrError } from './security.js';

const PAGE_SIZE = 15;

export async function projectPage(ctx, name, tab) {
  const project = await api.get(`/projects/${encodeURIComponent(name)}`);
  const role = ctx.user.sysadmin_flag ? 1 : project.current_user_role_id;
  const tabs = [
    ['repositories', 'Repositories', true],
    ['members', 'Members', [1, 4, 2, 3].includes(role)],
    ['robots', 'Robot accounts', role === 1],
    ['labels', 'Labels', [1, 4, 2, 3].includes(role)],
    ['immutability', 'Tag immutability', [1, 4].includes(role)],
    ['retention', 'Tag retention', [1, 4, 2].includes(role)],
    ['logs', 'Logs', [1, 4, 2, 3].includes(role)],
    ['webhooks', 'Webhooks', [1, 4].includes(role)],
    ['configuration', 'Configuration', role === 1],
  ].filter(([, , shown]) => shown);
  const current = tabs.some(([id]) => id === tab) ? tab : 'repositories';
  const base = `#/projects/${encodeURIComponent(name)}`;
  const panel = h('div', { role: 'tabpanel', id: 'tabpanel' }, loading());
  const view = { repositories: repositoriesTab, members: membersTab, robots: robotsTab, logs: logsTab,
    webhooks: webhooksTab, configuration: configurationTab, labels: labelsTab, immutability: immutabilityTab, retention: retentionTab }[current];
  Promise.resolve(view(ctx, project, role))
    .then((content) => fill(panel, content))
    .catch((error) => fill(panel, errorBox(error)));
  return h('div', {},
    h('p', { class: 'hint' }, h('a', { href: '#/projects' }, 'Projects'), ' / '),
    h('h1', {}, project.name,
      project.metadata.public === 'true' ? h('span', { class: 'badge ok' }, 'Public') : h('span', { class: 'badge' }, 'Private'),
      role ? h('span', { class: 'badge' }, api.ROLES[role] || '') : null,
      project.registry_id ? h('span', { class: 'badge warn', title: 'Pulls that miss are fetched from the registry and cached; pushes are refused' }, `Proxy cache of registry ${project.registry_id}`) : null),
    quotaLine(project),
    h('div', { class: 'tabs', role: 'tablist' }, tabs.map(([id, text]) =>
      h('a', { href: `${base}/${id}`, role: 'tab', 'aria-selected': id === current ? 'true' : 'false', 'aria-controls': 'tabpanel' }, text))),
    panel);
}

/** Whether the role may delete (artifacts, tags, repositories). */
export function mayDelete(role) {
  return role === 1 || role === 4;
}

function repositoriesTab(ctx, project, role) {
  const state = { page: 1, name: '' };
  const results = h('div', {}, loading());
  const filter = filterBox('Filter repositories by name', (text) => { state.name = text; state.page = 1; load(); });
  const inside = (full) => full.slice(project.name.length + 1);

  async function load() {
    try {
      const query = state.name ? { q: `name=~${state.name}` } : {};
      const { items, total } = await api.list(`/projects/${encodeURIComponent(project.name)}/repositories`, state.page, PAGE_SIZE, query);
      fill(results,
        table([
          { title: 'Name', cell: (r) => h('a', { href: `#/projects/${encodeURIComponent(project.name)}/repositories/${encodeURIComponent(inside(r.name))}` }, r.name) },
          { title: 'Artifacts', num: true, cell: (r) => r.artifact_count },
          { title: 'Pulls', num: true, cell: (r) => r.pull_count },
          { title: 'Last push', wide: true, cell: (r) => when(r.update_time) },
          { title: 'Actions', cell: (r) => (mayDelete(role)
            ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete repository ${r.name}`, on: { click: () => remove(r) } }, 'Delete')
            : '') },
        ], items, state.name ? 'No repository matches the filter.' : `No repositories yet: push one, e.g. podman push IMAGE ${ctx.host}/${project.name}/NAME:TAG`),
        pager(total, state.page, PAGE_SIZE, (page) => { state.page = page; load(); }));
    } catch (error) { fill(results, errorBox(error)); }
  }

  function remove(r) {
    return confirmed('Delete repository', `Delete ${r.name} with its ${r.artifact_count} artifact(s) and all their tags?`,
      () => api.change('DELETE', api.repoPath(project.name, r.name)), `Deleted ${r.name}`, load);
  }

  load();
  return h('div', {}, h('div', { class: 'toolbar' }, filter), results);
}

/** The project's storage against its quota, filled in when the summary answers. */
function quotaLine(project) {
  const line = h('p', { class: 'hint', 'aria-live': 'polite' }, 'Storage: …');
  api.get(`/projects/${encodeURIComponent(project.name)}/summary`)
    .then((s) => fill(line, 'Storage: ', usage(s.quota.used.storage, s.quota.hard.storage)))
    .catch(() => fill(line, ''));
  return line;
}

function logsTab(ctx, project) {
  return auditTable(`/projects/${encodeURIComponent(project.name)}/logs`);
}

const MIB = 1024 * 1024;

/** The quota: what the project holds against its limit; system administrators change the limit. */
async function quotaPanel(ctx, project) {
  const summary = await api.get(`/projects/${encodeURIComponent(project.name)}/summary`);
  const { used, hard } = { used: summary.quota.used.storage, hard: summary.quota.hard.storage };
  const panel = h('div', { class: 'panel' }, h('h2', {}, 'Quota'), h('p', {}, usage(used, hard)));
  if (!ctx.user.sysadmin_flag) {
    panel.append(h('p', { class: 'hint' }, 'A system administrator sets the limit.'));
    return panel;
  }
  const unlimited = checkbox('No limit', 'unlimited', hard < 0);
  const limit = field('Limit (MiB)', { name: 'limit', type: 'number', min: 1, value: hard > 0 ? Math.round(hard / MIB) : 1024 },
    `It holds ${size(used)}; pushes that would pass the limit are refused.`);
  const save = h('button', { type: 'button', class: 'primary' }, 'Save quota');
  save.addEventListener('click', async () => {
    const none = unlimited.querySelector('input').checked;
    const mib = Number(limit.querySelector('input').value);
    if (!none && !(mib >= 1)) { toast('Enter a limit of at least 1 MiB, or choose no limit.', true); return; }
    save.disabled = true;
    try {
      await api.change('PUT', `/quotas/${project.project_id}`, { hard: { storage: none ? -1 : Math.round(mib * MIB) } });
      toast('Quota saved');
      ctx.refresh();
    } catch (error) { toast(error.message, true); save.disabled = false; }
  });
  panel.append(unlimited, limit, h('div', { class: 'toolbar' }, save));
  return panel;
}

async function configurationTab(ctx, project) {
  const pub = h('input', { type: 'checkbox', id: 'cfg-public', checked: project.metadata.public === 'true' });
  const save = h('button', { type: 'button', class: 'primary' }, 'Save');
  save.addEventListener('click', async () => {
    save.disabled = true;
    try {
      await api.change('PUT', `/projects/${encodeURIComponent(project.name)}`, { metadata: { public: pub.checked ? 'true' : 'false' } });
      toast('Saved');
      ctx.refresh();
    } catch (error) { toast(error.message, true); save.disabled = false; }
  });
  return h('div', {}, h('div', { class: 'panel' },
    h('h2', {}, 'Access'),
    h('label', { class: 'inline', for: 'cfg-public' }, pub, 'Public: anyone may pull from this project, without signing in'),
    h('div', { class: 'toolbar' }, save)),
  await securityPanelOrError(ctx, project),
  await quotaPanel(ctx, project).catch(errorBox));
}
