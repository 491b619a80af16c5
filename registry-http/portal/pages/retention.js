// A project's tag retention: its rules (which artifacts each repository keeps), the schedule,
// runs on request (dry or real) and their history, with each repository's log.

import { h, fill, table, dialog, confirmed, field, checkbox, toast, when, size, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const TEMPLATES = [
  ['latestPushedK', 'the most recently pushed # artifacts'],
  ['latestPulledN', 'the most recently pulled # artifacts'],
  ['nDaysSinceLastPush', 'the artifacts pushed within the last # days'],
  ['nDaysSinceLastPull', 'the artifacts pulled within the last # days'],
  ['always', 'always'],
];

function ruleText(rule) {
  const [, text] = TEMPLATES.find(([t]) => t === rule.template) || [rule.template, rule.template];
  const n = Object.values(rule.params || {})[0];
  return `Retain ${text.replace('#', n ?? '')}`;
}

function selectorText(list, kind) {
  const s = (list || []).find((x) => x.kind === 'doublestar');
  if (!s) return '—';
  const not = s.decoration === 'excludes' || s.decoration === 'repoExcludes';
  const untagged = (s.extras || '').includes('"untagged":true');
  return [`${kind} ${not ? 'not ' : ''}matching `, h('code', {}, s.pattern), untagged ? ' (and untagged)' : ''];
}

export async function retentionTab(ctx, project) {
  const panel = h('div', {}, loading());
  const runs = h('div', {});
  let policy = null;

  async function load() {
    try {
      const fresh = await api.get(`/projects/${encodeURIComponent(project.name)}`);
      const id = fresh.metadata.retention_id;
      policy = id ? await api.get(`/retentions/${id}`) : null;
      fill(panel, policy ? policyView() : h('div', { class: 'panel' },
        h('p', {}, 'No retention policy: every artifact is kept.'),
        h('button', { type: 'button', class: 'primary', on: { click: addRule } }, 'Add a rule')));
      if (policy) loadRuns(); else fill(runs);
    } catch (error) { fill(panel, errorBox(error)); }
  }

  function policyView() {
    const cron = h('input', { type: 'text', value: (policy.trigger.settings || {}).cron || '', placeholder: '0 0 0 * * * (daily at midnight UTC)', 'aria-label': 'Schedule (cron)' });
    const saveCron = h('button', { type: 'button' }, 'Save schedule');
    saveCron.addEventListener('click', () => save({ ...policy, trigger: { kind: 'Schedule', settings: { cron: cron.value.trim() } } }, 'Schedule saved'));
    return h('div', {},
      h('p', { class: 'hint' }, 'In each repository a rule applies to, artifacts no rule retains are deleted (immutable tags are kept); garbage collection then frees their space.'),
      table([
        { title: 'Rule', cell: (r) => [ruleText(r), r.disabled ? h('span', { class: 'badge' }, 'Disabled') : null] },
        { title: 'Repositories', cell: (r) => selectorText((r.scope_selectors || {}).repository, 'repositories') },
        { title: 'Tags', cell: (r) => selectorText(r.tag_selectors, 'tags') },
        { title: 'Actions', cell: (r) => h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete rule ${r.id}`, on: { click: () => removeRule(r) } }, 'Delete') },
      ], policy.rules, 'No rules.'),
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', on: { click: addRule } }, 'Add a rule'),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', on: { click: () => start(true) } }, 'Dry run'),
        h('button', { type: 'button', class: 'primary', on: { click: () => start(false) } }, 'Run now')),
      h('div', { class: 'toolbar' }, h('label', { class: 'inline' }, 'Schedule (cron, UTC) ', cron), saveCron),
      h('h2', {}, 'Runs'), runs);
  }

  async function save(next, done) {
    try {
      if (next.id) await api.change('PUT', `/retentions/${next.id}`, next);
      else await api.change('POST', '/retentions', next);
      toast(done);
      load();
    } catch (error) { toast(error.message, true); }
  }

  async function addRule() {
    const body = h('div', {},
      field('Retain', { name: 'template', options: TEMPLATES.map(([t, text]) => [t, text]), value: 'latestPushedK' }),
      field('# (count or days)', { name: 'n', type: 'number', min: 0, value: 10 }),
      h('div', { class: 'selector' },
        field('Repositories', { name: 'repoDecoration', options: [['repoMatches', 'matching'], ['repoExcludes', 'not matching']], value: 'repoMatches' }),
        field('Repository pattern', { name: 'repo', value: '**', autocomplete: 'off' })),
      h('div', { class: 'selector' },
        field('Tags', { name: 'tagDecoration', options: [['matches', 'matching'], ['excludes', 'not matching']], value: 'matches' }),
        field('Tag pattern', { name: 'tag', value: '**', autocomplete: 'off' })),
      checkbox('Untagged artifacts too', 'untagged'));
    const rule = await dialog('New retention rule', body, 'Add rule', async (form) => {
      const e = form.elements;
      const template = e.template.value;
      const params = template === 'always' ? {} : { [template]: Number(e.n.value) };
      return {
        action: 'retain', template, params,
        tag_selectors: [{ kind: 'doublestar', decoration: e.tagDecoration.value, pattern: e.tag.value.trim() || '**', extras: e.untagged.checked ? '{"untagged":true}' : '' }],
        scope_selectors: { repository: [{ kind: 'doublestar', decoration: e.repoDecoration.value, pattern: e.repo.value.trim() || '**' }] },
      };
    });
    if (!rule) return;
    const next = policy
      ? { ...policy, rules: [...policy.rules, rule] }
      : { algorithm: 'or', rules: [rule], trigger: { kind: 'Schedule', settings: { cron: '' } }, scope: { level: 'project', ref: project.project_id } };
    save(next, 'Rule added');
  }

  function removeRule(r) {
    return confirmed('Delete rule', `Delete the rule "${ruleText(r)}"?`,
      () => api.change('PUT', `/retentions/${policy.id}`, { ...policy, rules: policy.rules.filter((x) => x.id !== r.id) }), 'Rule deleted', load);
  }

  async function start(dryRun) {
    try {
      await api.change('POST', `/retentions/${policy.id}/executions`, { dry_run: dryRun });
      toast(dryRun ? 'Dry run started' : 'Run started');
      loadRuns();
    } catch (error) { toast(error.message, true); }
  }

  async function loadRuns() {
    try {
      const { items } = await api.list(`/retentions/${policy.id}/executions`, 1, 15);
      fill(runs, table([
        { title: 'Run', num: true, cell: (x) => x.id },
        { title: 'Status', cell: (x) => x.status },
        { title: 'Dry run', cell: (x) => (x.dry_run ? 'Yes' : 'No') },
        { title: 'Trigger', cell: (x) => x.trigger },
        { title: 'Started', wide: true, cell: (x) => when(x.start_time) },
        { title: 'Actions', cell: (x) => h('button', { type: 'button', class: 'small', on: { click: () => tasks(x) } }, 'Repositories') },
      ], items, 'No runs yet.'));
      if (items.some((x) => x.status === 'Pending' || x.status === 'Running')) setTimeout(loadRuns, 1000);
    } catch (error) { fill(runs, errorBox(error)); }
  }

  async function tasks(run) {
    const base = `/retentions/${policy.id}/executions/${run.id}/tasks`;
    const { items } = await api.list(base, 1, 100).catch((e) => { toast(e.message, true); return { items: [] }; });
    const log = h('pre', { class: 'log', 'aria-live': 'polite' });
    const show = async (t) => { try { fill(log, await api.text(`${base}/${t.id}`)); } catch (e) { fill(log, e.message); } };
    await dialog(`Run ${run.id}${run.dry_run ? ' (dry run)' : ''}`, h('div', {}, table([
      { title: 'Repository', cell: (t) => t.repository },
      { title: 'Kept', num: true, cell: (t) => `${t.retained} of ${t.total}` },
      { title: run.dry_run ? 'Would delete' : 'Deleted', num: true, cell: (t) => t.deleted },
      { title: 'Frees', num: true, cell: (t) => size(t.freed_bytes) },
      { title: 'Log', cell: (t) => h('button', { type: 'button', class: 'small', on: { click: () => show(t) } }, 'Log') },
    ], items, 'No repository had a rule applying to it.'), log), null, null);
  }

  load();
  return panel;
}
