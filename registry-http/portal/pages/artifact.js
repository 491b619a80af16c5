// One artifact, shown for what it is: an image's platform, layers and build history; an index's
// platforms; a chart's README (rendered safely), values, dependencies and metadata with the
// helm commands; for every kind its tags, annotations and what belongs to it (signatures, SBOMs,
// attestations). Each addition is read when its tab is opened; a chart that cannot be read says
// why (the limit it broke) in its tab.

import { h, fill, table, when, size, short, copyButton, errorBox, loading } from '../dom.js';
import * as api from '../api.js';
import { renderMarkdown } from '../markdown.js';

export async function artifactPage(ctx, projectName, inside, reference) {
  const full = `${projectName}/${inside}`;
  const path = api.repoPath(projectName, full);
  const a = await api.get(`${path}/artifacts/${reference}?with_tag=true`);
  const extra = a.extra_attrs || {};
  const tags = (a.tags || []).map((t) => t.name);
  const tabs = tabsOf(a);
  const panel = h('div', { role: 'tabpanel', id: 'artifact-panel' });
  const tabList = h('div', { class: 'tabs', role: 'tablist' });

  function show(id) {
    for (const el of tabList.children) el.setAttribute('aria-selected', el.dataset.tab === id ? 'true' : 'false');
    const tab = tabs.find(([t]) => t === id) || tabs[0];
    fill(panel, loading());
    Promise.resolve(tab[2]()).then((content) => fill(panel, content), (error) => fill(panel, errorBox(error)));
  }
  fill(tabList, tabs.map(([id, text]) => h('button', { type: 'button', role: 'tab', 'data-tab': id, 'aria-controls': 'artifact-panel', on: { click: () => show(id) } }, text)));

  function tabsOf(artifact) {
    const addition = (name) => `${path}/artifacts/${artifact.digest}/additions/${name}`;
    const list = [['summary', 'Summary', summary]];
    if (artifact.type === 'CHART') {
      list.unshift(['readme', 'README', async () => renderMarkdown(await api.text(addition('readme.md')))]);
      list.push(['values', 'Values', async () => h('pre', { class: 'values', 'aria-label': 'values.yaml' }, await api.text(addition('values.yaml')))]);
      list.push(['dependencies', 'Dependencies', async () => {
        const deps = await api.get(addition('dependencies'));
        return table([
          { title: 'Chart', cell: (d) => d.name },
          { title: 'Version', cell: (d) => d.version },
          { title: 'Repository', cell: (d) => d.repository },
        ], deps, 'The chart depends on no other chart.', `${deps.length} dependencies`);
      }]);
    }
    if (artifact.addition_links && artifact.addition_links.build_history) {
      list.push(['layers', 'Layers', layers]);
      list.push(['history', 'Build history', async () => {
        const history = await api.get(addition('build_history'));
        return table([
          { title: 'Created', cell: (e) => when(e.created) },
          { title: 'Command', cell: (e) => h('code', { class: 'command' }, e.created_by || e.comment || '') },
          { title: 'Layer', cell: (e) => (e.empty_layer ? h('span', { class: 'hint' }, 'no layer') : '') },
        ], history, 'The image records no history.', `${history.length} steps`);
      }]);
    }
    if ((artifact.references || []).length) list.push(['platforms', 'Platforms', platforms]);
    if ((artifact.accessories || []).length) list.push(['accessories', 'Accessories', accessories]);
    return list;
  }

  function summary() {
    const rows = [];
    const row = (k, v) => { if (v !== undefined && v !== null && v !== '') rows.push([k, v]); };
    row('Type', a.type);
    row('Media type', a.media_type);
    row('Manifest type', a.manifest_media_type);
    row('Digest', h('span', { class: 'digest' }, h('code', {}, a.digest), copyButton(a.digest, 'Copy digest')));
    row('Size', size(a.size));
    row('Pushed', when(a.push_time));
    row('Last pulled', a.pull_time ? when(a.pull_time) : 'Never');
    if (a.type === 'CHART') {
      row('Chart', extra.name);
      row('Version', extra.version);
      row('App version', extra.appVersion);
      row('Description', extra.description);
      row('Home', extra.home && /^https?:/i.test(extra.home) ? h('a', { href: extra.home, rel: 'noopener noreferrer nofollow', target: '_blank' }, extra.home) : extra.home);
      row('Keywords', (extra.keywords || []).join(', '));
      row('Maintainers', (extra.maintainers || []).map((m) => m.name + (m.email ? ` <${m.email}>` : '')).join(', '));
      row('Deprecated', extra.deprecated ? 'yes' : '');
    }
    if (a.type === 'IMAGE') {
      row('Platform', [extra.os, extra.architecture, extra.variant].filter(Boolean).join('/'));
      row('Author', extra.author);
      row('Created', extra.created ? when(extra.created) : '');
      const cfg = extra.config || {};
      row('Entrypoint', cfg.Entrypoint ? h('code', {}, cfg.Entrypoint.join(' ')) : '');
      row('Command', cfg.Cmd ? h('code', {}, cfg.Cmd.join(' ')) : '');
    }
    for (const [k, v] of Object.entries(a.annotations || {})) row(k, v);
    const host = ctx.host;
    const commands = a.type === 'CHART'
      ? [`helm pull oci://${host}/${full} --version ${extra.version || tags[0] || ''}`,
        `helm repo add ${projectName} ${location.protocol}//${host}/chartrepo/${projectName}`]
      : [`podman pull ${host}/${full}${tags.length ? `:${tags[0]}` : `@${a.digest}`}`];
    return h('div', {},
      h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      h('h2', {}, 'Commands'),
      commands.map((c) => h('div', { class: 'pullcmd' }, h('code', {}, c), copyButton(c, 'Copy'))));
  }

  function layers() {
    const list = extra.layers || [];
    return table([
      { title: '#', num: true, cell: (l) => String(list.indexOf(l) + 1) },
      { title: 'Digest', cell: (l) => h('code', { title: l.digest }, short(l.digest)) },
      { title: 'Media type', cell: (l) => l.media_type },
      { title: 'Size', num: true, cell: (l) => size(l.size) },
    ], list, 'The image has no layers.', `${list.length} layer${list.length === 1 ? '' : 's'}, ${size(list.reduce((n, l) => n + l.size, 0))}`);
  }

  function platforms() {
    return table([
      { title: 'Platform', cell: (r) => [r.platform && r.platform.os, r.platform && r.platform.architecture, r.platform && r.platform.variant].filter(Boolean).join('/') || '—' },
      { title: 'Digest', cell: (r) => h('a', { href: `#/projects/${projectName}/repositories/${inside}/artifacts/${r.child_digest}` }, h('code', {}, short(r.child_digest))) },
    ], a.references, 'No children.');
  }

  function accessories() {
    return table([
      { title: 'Kind', cell: (x) => x.type },
      { title: 'Digest', cell: (x) => h('code', { title: x.digest }, short(x.digest)) },
      { title: 'Size', num: true, cell: (x) => size(x.size) },
      { title: 'Made', cell: (x) => when(x.creation_time) },
    ], a.accessories, 'Nothing belongs to it.');
  }

  show(tabs[0][0]);
  return h('div', {},
    h('p', { class: 'hint' }, h('a', { href: '#/projects' }, 'Projects'), ' / ',
      h('a', { href: `#/projects/${encodeURIComponent(projectName)}` }, projectName), ' / ',
      h('a', { href: `#/projects/${encodeURIComponent(projectName)}/repositories/${inside}` }, inside), ' / '),
    h('h1', {}, a.type === 'CHART' && extra.name ? `${extra.name} ${extra.version}` : `${full}${tags.length ? `:${tags[0]}` : `@${short(a.digest)}`}`),
    h('p', { class: 'hint' }, h('span', { class: `badge kind kind-${a.type.toLowerCase()}` }, a.type), ' ',
      tags.length ? `Tags: ${tags.join(', ')}` : 'Untagged', ` · ${size(a.size)} · pushed ${when(a.push_time)}`),
    tabList,
    panel);
}
