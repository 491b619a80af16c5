// A repository: its artifacts with tags, digest, size, platforms, signatures and referrers, the
// pull command to copy, and (by role) adding and deleting tags and deleting artifacts.

import { h, fill, table, pager, dialog, confirmed, field, filterBox, checkbox, toast, when, size, short, copyButton, labelChip, errorBox, loading } from '../dom.js';
import * as api from '../api.js';
import { mayDelete } from './project.js';
import { usableLabels } from './labels.js';

const PAGE_SIZE = 10;
const REPORT = 'application/vnd.security.vulnerability.report; version=1.1';
const ORDER = ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown'];
const TYPES = ['IMAGE', 'CHART', 'CNAB', 'WASM', 'SIGNATURE', 'SBOM', 'ATTESTATION', 'UNKNOWN'];
const CLIENTS = [['podman', 'podman pull'], ['docker', 'docker pull'], ['nerdctl', 'nerdctl pull']];

export async function repositoryPage(ctx, projectName, inside) {
  const project = await api.get(`/projects/${encodeURIComponent(projectName)}`);
  const role = ctx.user.sysadmin_flag ? 1 : project.current_user_role_id;
  const full = `${projectName}/${inside}`;
  const path = api.repoPath(projectName, full);
  const repo = await api.get(path);
  const canPush = [1, 4, 2].includes(role);
  const canDelete = mayDelete(role);
  const canScan = [1, 4, 2].includes(role);
  const state = { page: 1, timer: null, tag: '', type: '', client: localStorage.getItem('pull-client') || 'podman' };
  const typeSelect = h('select', { 'aria-label': 'Filter by type' },
    h('option', { value: '' }, 'All types'), TYPES.map((t) => h('option', { value: t }, t)));
  typeSelect.addEventListener('change', () => { state.type = typeSelect.value; state.page = 1; load(); });
  const filter = filterBox('Filter by tag', (text) => { state.tag = text; state.page = 1; load(); });
  const results = h('div', {}, loading());
  const image = `${ctx.host}/${full}`;

  const pullCommand = (reference) => {
    const verb = (CLIENTS.find(([c]) => c === state.client) || CLIENTS[0])[1];
    // A digest (it has a ':', which a tag cannot) is pulled with '@', a tag with ':'.
    return reference.includes(':') ? `${verb} ${image}@${reference}` : `${verb} ${image}:${reference}`;
  };
  const clientSelect = h('select', { 'aria-label': 'Client for pull commands' },
    CLIENTS.map(([c]) => h('option', { value: c, selected: c === state.client }, c)));
  clientSelect.addEventListener('change', () => { state.client = clientSelect.value; localStorage.setItem('pull-client', state.client); load(); });

  async function load() {
    try {
      const query = { with_tag: 'true', with_scan_overview: 'true', with_sbom_overview: 'true' };
      query.q = [state.tag ? `tags=~${state.tag}` : '', state.type ? `type=${state.type}` : ''].filter(Boolean).join(',');
      if (!query.q) delete query.q;
      const { items, total } = await api.list(`${path}/artifacts`, state.page, PAGE_SIZE, query);
      fill(results,
        table([
          { title: 'Artifact', cell: artifactCell },
          { title: 'Tags', cell: tagsCell },
          { title: 'Labels', cell: labelsCell },
          { title: 'Type', cell: typeCell },
          { title: 'Size', num: true, cell: (a) => size(a.size) },
          { title: 'Signed', cell: signedCell },
          { title: 'Vulnerabilities', cell: vulnerabilitiesCell },
          { title: 'SBOM', cell: sbomCell },
          { title: 'Pushed', wide: true, cell: (a) => when(a.push_time) },
          { title: 'Last pulled', wide: true, cell: (a) => (a.pull_time ? when(a.pull_time) : 'Never') },
          { title: 'Actions', cell: actionsCell },
        ], items, state.tag ? 'No artifact has a tag matching the filter.' : `No artifacts. Push one: podman push IMAGE ${image}:TAG`, `Artifacts of ${full}`),
        pager(total, state.page, PAGE_SIZE, (page) => { state.page = page; load(); }));
      // While scans run, look again shortly (only while this page is shown).
      const running = items.some((a) => [overviewOf(a), a.sbom_overview || {}].some((o) => ['Pending', 'Running'].includes(o.scan_status)));
      clearTimeout(state.timer);
      if (running) state.timer = setTimeout(() => { if (results.isConnected) load(); }, 1500);
    } catch (error) { fill(results, errorBox(error)); }
  }

  const overviewOf = (a) => (a.scan_overview && a.scan_overview[REPORT]) || {};

  function signedCell(a) {
    const kinds = [...new Set((a.accessories || []).filter((x) => x.type.startsWith('signature.')).map((x) => x.type.split('.')[1]))];
    return a.signed ? h('span', { class: 'badge ok', title: `Signed with ${kinds.join(' and ')}` }, `Signed (${kinds.join(', ')})`)
      : h('span', { class: 'badge' }, 'Not signed');
  }

  function vulnerabilitiesCell(a) {
    const o = overviewOf(a);
    const scannable = a.type === 'IMAGE';
    const scan = canScan && scannable
      ? h('button', { type: 'button', class: 'small', 'aria-label': `Scan ${short(a.digest)}`, on: { click: () => startScan(a) } }, 'Scan') : null;
    if (!o.scan_status) return [h('span', { class: 'hint' }, scannable ? 'Not scanned' : '—'), scan];
    if (['Pending', 'Running'].includes(o.scan_status)) return h('span', { class: 'badge warn', role: 'status' }, `Scanning… ${o.complete_percent || 0}%`);
    if (o.scan_status !== 'Success') {
      return [h('span', { class: 'badge bad', title: o.error || '' }, o.scan_status === 'Stopped' ? 'Scan stopped' : 'Scan failed'),
        o.error ? h('div', { class: 'hint' }, o.error) : null, scan];
    }
    const counts = (o.summary && o.summary.summary) || {};
    const total = (o.summary && o.summary.total) || 0;
    const bar = h('span', { class: 'sevbar', role: 'img', 'aria-label': `${total} vulnerabilities: ${ORDER.filter((k) => counts[k]).map((k) => `${counts[k]} ${k}`).join(', ') || 'none'}` },
      ORDER.filter((k) => counts[k]).map((k) => {
        const seg = h('span', { class: `sev sev-${k.toLowerCase()}`, title: `${counts[k]} ${k}` });
        seg.style.flexGrow = String(counts[k]);
        return seg;
      }));
    const view = h('button', { type: 'button', class: 'small', 'aria-label': `Vulnerabilities of ${short(a.digest)}`, on: { click: () => showReport(a) } },
      total ? `${total} (${o.severity})` : 'None found');
    return [total ? bar : h('span', { class: 'badge ok' }, 'No vulnerabilities'), view, scan];
  }

  async function startScan(a, scanType = 'vulnerability') {
    try {
      await api.change('POST', `${path}/artifacts/${a.digest}/scan`, { scan_type: scanType });
      toast(scanType === 'sbom' ? `Generating an SBOM of ${short(a.digest)}` : `Scanning ${short(a.digest)}`);
      load();
    } catch (e) { toast(e.message, true); }
  }

  function sbomCell(a) {
    const o = a.sbom_overview || {};
    const generate = canScan && a.type === 'IMAGE'
      ? h('button', { type: 'button', class: 'small', 'aria-label': `Generate an SBOM of ${short(a.digest)}`, on: { click: () => startScan(a, 'sbom') } }, 'Generate SBOM') : null;
    if (!o.scan_status) return [h('span', { class: 'hint' }, a.type === 'IMAGE' ? 'None' : '—'), generate];
    if (['Pending', 'Running'].includes(o.scan_status)) return h('span', { class: 'badge warn', role: 'status' }, 'Generating…');
    if (o.scan_status !== 'Success') {
      return [h('span', { class: 'badge bad', title: o.error || '' }, o.scan_status === 'Stopped' ? 'Stopped' : 'Failed'),
        o.error ? h('div', { class: 'hint' }, o.error) : null, generate];
    }
    const view = h('button', { type: 'button', class: 'small', 'aria-label': `SBOM of ${short(a.digest)}`, on: { click: () => showSbom(a, o.sbom_digest) } }, 'View SBOM');
    return [view, generate];
  }

  async function showSbom(a, digest) {
    let doc;
    try { doc = await api.get(`${path}/artifacts/${a.digest}/additions/sbom`); } catch (e) { toast(e.message, true); return; }
    const packages = (doc.packages || []).filter((p) => p.name);
    await dialog(`SBOM of ${short(a.digest)}`, h('div', { class: 'report' },
      h('p', { class: 'hint' }, `${doc.spdxVersion || 'SBOM'} · ${packages.length} packages · `, h('code', {}, short(digest))),
      table([
        { title: 'Package', cell: (p) => p.name },
        { title: 'Version', cell: (p) => p.versionInfo || '—' },
        { title: 'Licence', cell: (p) => p.licenseConcluded || p.licenseDeclared || '—' },
      ], packages, 'The SBOM lists no packages.', `${packages.length} packages`)), null, null);
  }

  async function showReport(a) {
    let report;
    try { report = (await api.get(`${path}/artifacts/${a.digest}/additions/vulnerabilities`))[REPORT]; } catch (e) { toast(e.message, true); return; }
    const rows = ((report && report.vulnerabilities) || []).slice().sort((x, y) => ORDER.indexOf(x.severity) - ORDER.indexOf(y.severity));
    await dialog(`Vulnerabilities of ${short(a.digest)}`, h('div', { class: 'report' },
      report && report.scanner ? h('p', { class: 'hint' }, `Scanned by ${report.scanner.name} ${report.scanner.version} ${when(report.generated_at)}`) : null,
      table([
        { title: 'CVE', cell: (v) => (v.links && v.links[0] ? h('a', { href: v.links[0], rel: 'noopener noreferrer', target: '_blank' }, v.id) : v.id) },
        { title: 'Severity', cell: (v) => h('span', { class: `badge sevtext-${String(v.severity).toLowerCase()}` }, v.severity) },
        { title: 'Package', cell: (v) => `${v.package || ''} ${v.version || ''}` },
        { title: 'Fixed in', cell: (v) => v.fix_version || '—' },
      ], rows, 'No vulnerabilities found.', `${rows.length} vulnerabilities`)), null, null);
  }

  function artifactCell(a) {
    const tree = [];
    for (const child of a.references || []) {
      const p = child.platform || {};
      tree.push(h('li', {}, `${[p.os, p.architecture, p.variant].filter(Boolean).join('/') || 'child'} `, h('code', {}, short(child.child_digest))));
    }
    for (const acc of a.accessories || []) {
      tree.push(h('li', {}, `${acc.type} `, h('code', {}, short(acc.digest)), ` · ${size(acc.size)}`));
    }
    const view = `#/projects/${projectName}/repositories/${inside}/artifacts/${a.digest}`;
    return [h('span', { class: 'digest' }, h('a', { href: view, 'aria-label': `View ${short(a.digest)}` }, h('code', { title: a.digest }, short(a.digest))), copyButton(a.digest, 'Copy digest')),
      tree.length ? h('ul', { class: 'tree', 'aria-label': `What belongs to ${short(a.digest)}` }, tree) : null];
  }

  function typeCell(a) {
    const extra = a.extra_attrs || {};
    return [h('span', { class: `badge kind kind-${String(a.type).toLowerCase()}` }, a.type),
      a.type === 'CHART' && extra.name ? h('div', { class: 'hint' }, `${extra.name} ${extra.version}`) : null,
      platforms(a)];
  }

  function platforms(a) {
    const list = (a.references || []).map((r) => r.platform).filter(Boolean)
      .map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join('/'));
    return list.length ? h('div', { class: 'hint' }, list.join(', ')) : null;
  }

  function labelsCell(a) {
    const chips = (a.labels || []).map((l) => labelChip(l, canPush ? () => unlabel(a, l) : null));
    return [chips, canPush ? h('button', { type: 'button', class: 'small', 'aria-label': `Label ${short(a.digest)}`, on: { click: () => label(a) } }, '+ Label') : null];
  }

  async function label(a) {
    const all = await usableLabels(project).catch((e) => { toast(e.message, true); return null; });
    if (!all) return;
    const on = new Set((a.labels || []).map((l) => l.id));
    const choices = all.filter((l) => !on.has(l.id));
    if (!choices.length) { toast('No other label to add: make labels in the project\'s Labels tab.', true); return; }
    const added = await dialog(`Label ${short(a.digest)}`,
      h('div', {}, choices.map((l) => checkbox(`${l.name}${l.scope === 'g' ? ' (global)' : ''}`, 'label', false, String(l.id)))),
      'Add', async (form) => {
        const picked = [...form.querySelectorAll('input[name=label]:checked')].map((i) => Number(i.value));
        if (!picked.length) throw new Error('Choose a label.');
        for (const id of picked) await api.change('POST', `${path}/artifacts/${a.digest}/labels`, { id });
        return picked.length;
      });
    if (added) { toast(`Added ${added} label(s)`); load(); }
  }

  function unlabel(a, l) {
    return confirmed('Remove label', `Take the label ${l.name} off ${short(a.digest)}?`,
      () => api.change('DELETE', `${path}/artifacts/${a.digest}/labels/${l.id}`), `Removed ${l.name}`, load, 'Remove');
  }

  function tagsCell(a) {
    const chips = (a.tags || []).map((t) => h('span', { class: 'chip' }, h('span', {}, t.name),
      t.immutable ? h('span', { class: 'badge', title: 'An immutability rule protects this tag' }, 'immutable') : null,
      canDelete && !t.immutable ? h('button', { type: 'button', 'aria-label': `Delete tag ${t.name}`, title: `Delete tag ${t.name}`, on: { click: () => removeTag(a, t.name) } }, '×') : null));
    return [chips.length ? chips : h('span', { class: 'hint' }, 'untagged'),
      canPush ? h('button', { type: 'button', class: 'small', 'aria-label': `Add a tag to ${short(a.digest)}`, on: { click: () => addTag(a) } }, '+ Tag') : null];
  }

  function actionsCell(a) {
    const reference = a.tags && a.tags.length ? a.tags[0].name : a.digest;
    const command = a.type === 'CHART'
      ? `helm pull oci://${image} --version ${(a.extra_attrs || {}).version || reference}` : pullCommand(reference);
    return h('div', { class: 'toolbar' },
      copyButton(command, 'Copy pull command'),
      canDelete ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete artifact ${short(a.digest)}`, on: { click: () => removeArtifact(a) } }, 'Delete') : null);
  }

  async function addTag(a) {
    const added = await dialog(`Add a tag to ${short(a.digest)}`, field('Tag', { name: 'tag', required: true, autocomplete: 'off' },
      'Letters, digits, . _ - ; up to 128 characters, not starting with . or -.'), 'Add', async (form) => {
      const name = form.elements.tag.value.trim();
      if (!name) throw new Error('Enter a tag.');
      await api.change('POST', `${path}/artifacts/${a.digest}/tags`, { name });
      return name;
    });
    if (added) { toast(`Tagged ${short(a.digest)} as ${added}`); load(); }
  }

  function removeTag(a, tag) {
    return confirmed('Delete tag', `Delete the tag ${tag}? The artifact stays.`,
      () => api.change('DELETE', `${path}/artifacts/${a.digest}/tags/${encodeURIComponent(tag)}`), `Deleted tag ${tag}`, load);
  }

  function removeArtifact(a) {
    const tags = (a.tags || []).map((t) => t.name).join(', ');
    return confirmed('Delete artifact', `Delete ${short(a.digest)}${tags ? ` and its tags ${tags}` : ''}, with its signatures?`,
      () => api.change('DELETE', `${path}/artifacts/${a.digest}`), `Deleted ${short(a.digest)}`, load);
  }

  load();
  return h('div', {},
    h('p', { class: 'hint' }, h('a', { href: '#/projects' }, 'Projects'), ' / ',
      h('a', { href: `#/projects/${encodeURIComponent(projectName)}` }, projectName), ' / '),
    h('h1', {}, full),
    h('p', { class: 'hint' }, `${repo.artifact_count} artifact(s) · ${repo.pull_count} pull(s) · last push ${when(repo.update_time)}`),
    h('div', { class: 'pullcmd' }, h('label', { class: 'inline' }, 'Pull with ', clientSelect),
      h('code', {}, pullCommand('TAG')), copyButton(pullCommand('latest'), 'Copy')),
    h('div', { class: 'toolbar' }, filter, typeSelect),
    results);
}
