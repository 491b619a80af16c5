// A project's tag immutability rules: tags matching a rule, in repositories matching it, cannot
// be pushed over, deleted, or deleted with their artifact or repository.

import { h, fill, table, dialog, confirmed, field, toast, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

/** The one pattern of a selector list, with its decoration in words. */
function selector(list, kind) {
  const s = (list || [])[0];
  if (!s) return '—';
  const excludes = s.decoration === 'excludes' || s.decoration === 'repoExcludes';
  return [excludes ? `${kind} not matching ` : `${kind} matching `, h('code', {}, s.pattern)];
}

export function immutabilityTab(ctx, project) {
  const base = `/projects/${encodeURIComponent(project.name)}/immutabletagrules`;
  const results = h('div', {}, loading());

  async function load() {
    try {
      const { items } = await api.list(base, 1, 100);
      fill(results, table([
        { title: 'Repositories', cell: (r) => selector((r.scope_selectors || {}).repository, 'repositories') },
        { title: 'Tags', cell: (r) => selector(r.tag_selectors, 'tags') },
        { title: 'State', cell: (r) => (r.disabled ? h('span', { class: 'badge' }, 'Disabled') : h('span', { class: 'badge ok' }, 'Enabled')) },
        { title: 'Actions', cell: (r) => h('div', { class: 'toolbar' },
          h('button', { type: 'button', class: 'small', on: { click: () => toggle(r) } }, r.disabled ? 'Enable' : 'Disable'),
          h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete rule ${r.id}`, on: { click: () => remove(r) } }, 'Delete')) },
      ], items, 'No rules: every tag may be pushed over and deleted.'));
    } catch (error) { fill(results, errorBox(error)); }
  }

  async function toggle(r) {
    try {
      await api.change('PUT', `${base}/${r.id}`, { disabled: !r.disabled });
      toast(r.disabled ? 'Rule enabled' : 'Rule disabled');
      load();
    } catch (error) { toast(error.message, true); }
  }

  function remove(r) {
    return confirmed('Delete rule', 'Delete this rule? Its tags can then be pushed over and deleted.',
      () => api.change('DELETE', `${base}/${r.id}`), 'Rule deleted', load);
  }

  async function add() {
    const body = h('div', {},
      h('div', { class: 'selector' },
        field('Repositories', { name: 'repoDecoration', options: [['repoMatches', 'matching'], ['repoExcludes', 'not matching']], value: 'repoMatches' }),
        field('Repository pattern', { name: 'repo', value: '**', required: true, autocomplete: 'off' }, '** for all; * within one path level; {a,b} either')),
      h('div', { class: 'selector' },
        field('Tags', { name: 'tagDecoration', options: [['matches', 'matching'], ['excludes', 'not matching']], value: 'matches' }),
        field('Tag pattern', { name: 'tag', required: true, autocomplete: 'off', placeholder: 'v*' }, 'e.g. v* or release-{1,2}.*')));
    const saved = await dialog('New immutability rule', body, 'Add rule', async (form) => {
      const e = form.elements;
      if (!e.tag.value.trim() || !e.repo.value.trim()) throw new Error('Enter a repository pattern and a tag pattern.');
      await api.change('POST', base, {
        tag_selectors: [{ kind: 'doublestar', decoration: e.tagDecoration.value, pattern: e.tag.value.trim() }],
        scope_selectors: { repository: [{ kind: 'doublestar', decoration: e.repoDecoration.value, pattern: e.repo.value.trim() }] },
      });
      return true;
    });
    if (saved) { toast('Rule added'); load(); }
  }

  load();
  return h('div', {},
    h('p', { class: 'hint' }, 'A tag a rule matches cannot move to other content or be deleted; re-pushing the same content is fine.'),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: add } }, 'New rule')),
    results);
}
