// Replications (system administrators): the replication policies — push-based (to a registry)
// or pull-based (from one) — with their filters; making one, running it, deleting it; and the
// executions of the chosen policy with their tasks and each task's log.

import { h, fill, table, dialog, confirmed, field, checkbox, toast, when, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const MODES = [['push', 'Push-based: from this registry to the remote'], ['pull', 'Pull-based: from the remote to this registry']];
const TRIGGERS = [['manual', 'Manual'], ['scheduled', 'Scheduled (cron)'], ['event_based', 'On push (push-based only)']];
const FLATTEN = [['-1', 'Flatten all levels'], ['0', 'No flattening'], ['1', 'Flatten 1 level'], ['2', 'Flatten 2 levels'], ['3', 'Flatten 3 levels']];

export async function replicationsPage() {
  const list = h('div', {}, loading());
  const runs = h('div', { class: 'panel' }, h('p', { class: 'hint' }, 'Choose a policy to see its executions.'));
  let chosen = null;
  let registries = [];

  async function load() {
    try {
      registries = (await api.list('/registries', 1, 100)).items;
      const { items } = await api.list('/replication/policies', 1, 100);
      fill(list, table([
        { title: 'Name', cell: (p) => [h('strong', {}, p.name), p.description ? h('div', { class: 'hint' }, p.description) : null] },
        { title: 'Direction', cell: (p) => (p.src_registry && p.src_registry.id ? `Pull from ${p.src_registry.name}` : `Push to ${p.dest_registry.name}`) },
        { title: 'Filters', cell: (p) => (p.filters || []).map((f) => h('div', {}, `${f.type} ${f.decoration === 'excludes' ? 'excludes' : 'matches'} ${[].concat(f.value).join(', ')}`)) },
        { title: 'Destination namespace', cell: (p) => p.dest_namespace || '(the source\'s)' },
        { title: 'Trigger', cell: (p) => (p.trigger.type === 'scheduled' ? `Scheduled ${p.trigger.trigger_settings.cron}` : p.trigger.type === 'event_based' ? (p.replicate_deletion ? 'On push and deletion' : 'On push') : 'Manual') },
        { title: 'Bandwidth', cell: (p) => [p.speed > 0 ? `${p.speed} KiB/s` : 'No limit', p.copy_by_chunk ? h('div', { class: 'hint' }, 'by chunk') : null] },
        { title: 'Enabled', cell: (p) => (p.enabled ? 'Yes' : 'No') },
        { title: 'Actions', cell: actions },
      ], items, registries.length ? 'No replication policy yet.' : 'No replication policy yet: add a registry on the Registries page first.', 'Replication policies'));
    } catch (error) { fill(list, errorBox(error)); }
  }

  function actions(p) {
    return h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'small primary', 'aria-label': `Replicate ${p.name}`, on: { click: () => start(p) } }, 'Replicate'),
      h('button', { type: 'button', class: 'small', 'aria-label': `Executions of ${p.name}`, on: { click: () => { chosen = p; loadRuns(); } } }, 'Executions'),
      h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete policy ${p.name}`, on: { click: () => remove(p) } }, 'Delete'));
  }

  async function start(p) {
    try {
      await api.change('POST', '/replication/executions', { policy_id: p.id });
      toast(`Replicating ${p.name}`);
      chosen = p;
      loadRuns();
    } catch (e) { toast(e.message, true); }
  }

  function remove(p) {
    return confirmed('Delete policy', `Delete the replication policy ${p.name}? What it copied stays.`,
      () => api.change('DELETE', `/replication/policies/${p.id}`), `Deleted ${p.name}`, load);
  }

  async function loadRuns() {
    if (!chosen) return;
    try {
      const { items } = await api.list('/replication/executions', 1, 20, { policy_id: String(chosen.id) });
      fill(runs, h('h2', {}, `Executions of ${chosen.name}`), table([
        { title: 'Started', cell: (e) => when(e.start_time) },
        { title: 'Status', cell: (e) => h('span', { class: `badge ${e.status === 'Succeed' ? 'ok' : e.status === 'Failed' ? 'bad' : 'warn'}`, role: 'status' }, e.status) },
        { title: 'Tasks', cell: (e) => `${e.succeed} succeeded, ${e.failed} failed of ${e.total}` },
        { title: 'Why', cell: (e) => e.status_text || '' },
        { title: 'Actions', cell: (e) => h('button', { type: 'button', class: 'small', 'aria-label': `Tasks of execution ${e.id}`, on: { click: () => showTasks(e) } }, 'Tasks') },
      ], items, 'Not run yet.', `Executions of ${chosen.name}`));
      if (items.some((e) => e.status === 'InProgress')) setTimeout(() => { if (runs.isConnected) loadRuns(); }, 1000);
    } catch (error) { fill(runs, errorBox(error)); }
  }

  async function showTasks(e) {
    let tasks;
    try { tasks = (await api.list(`/replication/executions/${e.id}/tasks`, 1, 100)).items; } catch (err) { toast(err.message, true); return; }
    const logs = await Promise.all(tasks.map((t) => api.text(`/replication/executions/${e.id}/tasks/${t.id}/log`).catch(() => '')));
    await dialog(`Tasks of execution ${e.id}`, table([
      { title: 'Source', cell: (t) => h('code', {}, t.src_resource) },
      { title: 'Destination', cell: (t) => h('code', {}, t.dst_resource) },
      { title: 'Status', cell: (t) => t.status },
      { title: 'Bytes sent', num: true, cell: (t) => String(t.bytes || 0) },
      { title: 'Log', cell: (t) => h('details', {}, h('summary', {}, 'Log'), h('pre', { class: 'tasklog' }, logs[tasks.indexOf(t)] || '')) },
    ], tasks, 'No task: nothing matched the filters.', 'Tasks'), null, null);
  }

  function settingsOf(form) {
    const el = form.elements;
    const remote = { id: Number(el.registry.value) };
    const filters = [];
    if (el.names.value.trim()) filters.push({ type: 'name', value: el.names.value.trim() });
    if (el.tags.value.trim()) filters.push({ type: 'tag', value: el.tags.value.trim(), decoration: el.exclude.checked ? 'excludes' : 'matches' });
    const labels = el.labels.value.split(',').map((l) => l.trim()).filter(Boolean);
    if (labels.length) filters.push({ type: 'label', value: labels });
    const speed = el.speed.value.trim() ? Number(el.speed.value) : -1;
    if (!Number.isInteger(speed) || speed < -1) throw new Error('Bandwidth: a whole number of KiB/s, or empty for no limit.');
    const body = { name: el.name.value.trim(), description: el.description.value.trim(), dest_namespace: el.namespace.value.trim(),
      dest_namespace_replace_count: Number(el.flatten.value), override: el.override.checked, enabled: true, filters,
      replicate_deletion: el.deletion.checked, copy_by_chunk: el.chunk.checked, speed,
      trigger: { type: el.trigger.value, trigger_settings: { cron: el.cron.value.trim() } } };
    if (el.mode.value === 'push') body.dest_registry = remote; else body.src_registry = remote;
    if (!body.name) throw new Error('Enter a name.');
    if (!remote.id) throw new Error('Choose a registry (add one on the Registries page).');
    return body;
  }

  async function add() {
    const body = h('div', {},
      field('Name', { name: 'name', required: true, autocomplete: 'off' }),
      field('Description', { name: 'description' }),
      field('Replication mode', { name: 'mode', options: MODES, value: 'push' }),
      field('Registry', { name: 'registry', options: registries.map((r) => [String(r.id), `${r.name} (${r.url})`]) }),
      field('Repositories (pattern)', { name: 'names', placeholder: 'library/**' }, '** matches across levels, * within one. Empty: every repository.'),
      field('Tags (pattern)', { name: 'tags', placeholder: 'v*' }),
      checkbox('Exclude the tags matching the pattern instead', 'exclude'),
      field('Labels (push-based)', { name: 'labels', placeholder: 'release, approved' }, 'Only artifacts carrying every one of these labels.'),
      field('Destination namespace', { name: 'namespace', placeholder: 'mirror' }, 'Empty: the source\'s path. Pull-based: an existing project.'),
      field('Flattening', { name: 'flatten', options: FLATTEN, value: '1' }),
      field('Trigger', { name: 'trigger', options: TRIGGERS, value: 'manual' }),
      field('Cron (scheduled)', { name: 'cron', placeholder: '0 0 2 * * *' }, 'Six fields, seconds first.'),
      checkbox('Delete remote resources when locally deleted (event-based)', 'deletion'),
      field('Bandwidth (KiB/s)', { name: 'speed', placeholder: 'no limit', inputmode: 'numeric' }),
      checkbox('Copy by chunk', 'chunk'),
      checkbox('Replace destination tags that name other content', 'override', true));
    const made = await dialog('New replication policy', body, 'Save', async (form) => {
      await api.change('POST', '/replication/policies', settingsOf(form));
      return form.elements.name.value.trim();
    });
    if (made) { toast(`Saved ${made}`); load(); }
  }

  load();
  return h('div', {}, h('h1', {}, 'Replications'),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: add } }, 'New replication policy')),
    list, runs);
}
