// Search: projects and repositories whose names contain the text.

import { h, table } from '../dom.js';
import * as api from '../api.js';

export async function searchPage(ctx, text) {
  const found = await api.get(`/search?q=${encodeURIComponent(text)}`);
  return h('div', {},
    h('h1', {}, `Search: ${text}`),
    h('h2', {}, 'Projects'),
    table([
      { title: 'Name', cell: (p) => h('a', { href: `#/projects/${encodeURIComponent(p.name)}` }, p.name) },
      { title: 'Access', cell: (p) => (p.metadata && p.metadata.public === 'true' ? 'Public' : 'Private') },
    ], found.project || [], 'No project matches.'),
    h('h2', {}, 'Repositories'),
    table([
      { title: 'Name', cell: (r) => h('a', { href: `#/projects/${encodeURIComponent(r.project_name)}/repositories/${encodeURIComponent(r.repository_name.slice(r.project_name.length + 1))}` }, r.repository_name) },
      { title: 'Artifacts', num: true, cell: (r) => r.artifact_count },
      { title: 'Pulls', num: true, cell: (r) => r.pull_count },
    ], found.repository || [], 'No repository matches.'));
}
