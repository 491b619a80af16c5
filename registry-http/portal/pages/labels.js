// Labels: a project's own (Labels tab) and the global ones (system administrators' Labels page);
// artifacts carry them (the repository page puts them on and takes them off).

import { h, fill, table, dialog, confirmed, field, toast, when, labelChip, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

function editor(label = {}) {
  return h('div', {},
    field('Name', { name: 'name', value: label.name || '', required: true, autocomplete: 'off' }),
    field('Colour', { name: 'color', type: 'color', value: label.color || '#5b6677' }),
    field('Description', { name: 'description', value: label.description || '', autocomplete: 'off' }));
}

function values(form) {
  const e = form.elements;
  const name = e.name.value.trim();
  if (!name) throw new Error('Enter a name for the label.');
  return { name, color: e.color.value, description: e.description.value.trim() };
}

/** The labels of one scope: `query` picks them (scope g, or p with project_id); `manage` shows the controls. */
function labelList(query, scope, manage) {
  const results = h('div', {}, loading());

  async function load() {
    try {
      const { items } = await api.list('/labels', 1, 100, query);
      fill(results, table([
        { title: 'Label', cell: (l) => labelChip(l) },
        { title: 'Description', wide: true, cell: (l) => l.description || '' },
        { title: 'Created', wide: true, cell: (l) => when(l.creation_time) },
        { title: 'Actions', cell: (l) => (manage ? h('div', { class: 'toolbar' },
          h('button', { type: 'button', class: 'small', on: { click: () => edit(l) } }, 'Edit'),
          h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete label ${l.name}`, on: { click: () => remove(l) } }, 'Delete')) : '') },
      ], items, 'No labels yet.'));
    } catch (error) { fill(results, errorBox(error)); }
  }

  async function create() {
    const made = await dialog('New label', editor(), 'Create', async (form) => {
      await api.change('POST', '/labels', { ...values(form), ...scope });
      return true;
    });
    if (made) { toast('Label created'); load(); }
  }

  async function edit(l) {
    const saved = await dialog(`Edit label ${l.name}`, editor(l), 'Save', async (form) => {
      await api.change('PUT', `/labels/${l.id}`, values(form));
      return true;
    });
    if (saved) { toast('Label saved'); load(); }
  }

  function remove(l) {
    return confirmed('Delete label', `Delete the label ${l.name}? It is taken off every artifact.`,
      () => api.change('DELETE', `/labels/${l.id}`), `Deleted ${l.name}`, load);
  }

  load();
  return h('div', {},
    manage ? h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', on: { click: create } }, 'New label')) : null,
    results);
}

export function labelsTab(ctx, project, role) {
  const manage = role === 1 || role === 4;
  return labelList({ scope: 'p', project_id: project.project_id }, { scope: 'p', project_id: project.project_id }, manage);
}

export async function globalLabelsPage() {
  return h('div', {}, h('h1', {}, 'Labels'),
    h('p', { class: 'hint' }, 'Global labels can go on artifacts of every project.'),
    labelList({ scope: 'g' }, { scope: 'g' }, true));
}

/** Every label that may go on an artifact of `project`: the global ones and its own. */
export async function usableLabels(project) {
  const [global, own] = await Promise.all([
    api.list('/labels', 1, 100, { scope: 'g' }),
    api.list('/labels', 1, 100, { scope: 'p', project_id: project.project_id }),
  ]);
  return [...global.items, ...own.items];
}
