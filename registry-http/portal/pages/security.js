// A project's security settings (project admins): content trust (cosign, notation) with the
// cosign keys and notation roots signatures must verify under, scans on push, vulnerability prevention at a
// severity, the CVE allowlist (the system's or the project's own), and the project's scanner.

import { h, field, toast, errorBox } from '../dom.js';
import * as api from '../api.js';

const SEVERITIES = [['none', 'None (any vulnerability)'], ['low', 'Low'], ['medium', 'Medium'], ['high', 'High'], ['critical', 'Critical']];

export async function securityPanel(ctx, project) {
  const name = encodeURIComponent(project.name);
  const m = project.metadata || {};
  const on = (key) => m[key] === 'true';
  const box = (id, key, text) => h('label', { class: 'inline', for: id }, h('input', { type: 'checkbox', id, name: key, checked: on(key) }), text);
  const [keys, scanner, candidates] = await Promise.all([
    api.get(`/projects/${name}/content-trust/keys`).catch(() => ({ cosign: [], notation: [] })),
    api.get(`/projects/${name}/scanner`).catch(() => null),
    api.list(`/projects/${name}/scanner/candidates`, 1, 100).then((r) => r.items).catch(() => []),
  ]);
  const list = project.cve_allowlist || { items: [] };
  const keysArea = h('textarea', { id: 'sec-keys', rows: 4, placeholder: '-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----' }, (keys.cosign || []).join('\n'));
  const rootsArea = h('textarea', { id: 'sec-roots', rows: 4, placeholder: '-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----' }, (keys.notation || []).join('\n'));
  const severity = field('Prevent pulling images with vulnerabilities of this severity or higher',
    { name: 'severity', options: SEVERITIES, value: (m.severity || 'low').toLowerCase() });
  const reuse = h('input', { type: 'checkbox', id: 'sec-reuse', checked: m.reuse_sys_cve_allowlist !== 'false' });
  const cves = h('textarea', { id: 'sec-cves', rows: 3, 'aria-label': 'The project\'s allowed CVEs, one per line' }, (list.items || []).map((i) => i.cve_id).join('\n'));
  const scannerSelect = h('select', { id: 'sec-scanner', 'aria-label': 'Scanner' },
    candidates.map((s) => h('option', { value: s.uuid, selected: scanner && s.uuid === scanner.uuid }, `${s.name}${s.is_default ? ' (default)' : ''}`)));
  const form = h('form', { class: 'panel', novalidate: true },
    h('h2', {}, 'Security'),
    h('h3', {}, 'Content trust'),
    box('sec-cosign', 'enable_content_trust_cosign', 'Pull only artifacts signed with cosign'),
    box('sec-notation', 'enable_content_trust', 'Pull only artifacts signed with notation'),
    h('div', { class: 'field' }, h('label', { for: 'sec-keys' }, 'Trusted cosign public keys (PEM, ECDSA P-256)'), keysArea,
      h('div', { class: 'hint' }, 'With keys, a cosign signature counts only when it verifies under one of them; without, any signature counts.')),
    h('div', { class: 'field' }, h('label', { for: 'sec-roots' }, 'Trusted notation root certificates (PEM, X.509)'), rootsArea,
      h('div', { class: 'hint' }, 'With roots, a notation signature counts only when its certificate chain leads to one of them and it verifies; without, any signature counts.')),
    h('h3', {}, 'Vulnerabilities'),
    box('sec-autoscan', 'auto_scan', 'Scan images when they are pushed'),
    box('sec-autosbom', 'auto_sbom_generation', 'Generate an SBOM of images when they are pushed'),
    box('sec-prevent', 'prevent_vul', 'Prevent vulnerable images from being pulled'),
    severity,
    h('label', { class: 'inline', for: 'sec-reuse' }, reuse, 'Use the system CVE allowlist'),
    h('div', { class: 'field' }, h('label', { for: 'sec-cves' }, 'This project\'s CVE allowlist (when not using the system\'s)'), cves),
    h('h3', {}, 'Scanner'),
    candidates.length ? h('label', { class: 'inline', for: 'sec-scanner' }, 'Scan with ', scannerSelect)
      : h('p', { class: 'hint' }, 'No scanner is registered: a system admin adds one on the Scanners page.'),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary' }, 'Save security settings')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const el = form.elements;
    const metadata = {};
    for (const key of ['enable_content_trust_cosign', 'enable_content_trust', 'auto_scan', 'auto_sbom_generation', 'prevent_vul']) metadata[key] = el[key].checked ? 'true' : 'false';
    metadata.severity = el.severity.value;
    metadata.reuse_sys_cve_allowlist = reuse.checked ? 'true' : 'false';
    const items = cves.value.split(/[\s,]+/).filter(Boolean).map((cve_id) => ({ cve_id }));
    const pems = keysArea.value.split(/(?<=-----END PUBLIC KEY-----)/).map((k) => k.trim()).filter(Boolean);
    const roots = rootsArea.value.split(/(?<=-----END CERTIFICATE-----)/).map((k) => k.trim()).filter(Boolean);
    try {
      await api.change('PUT', `/projects/${name}`, { metadata, cve_allowlist: { items } });
      await api.change('PUT', `/projects/${name}/content-trust/keys`, { cosign: pems, notation: roots });
      if (candidates.length && (!scanner || scannerSelect.value !== scanner.uuid)) {
        await api.change('PUT', `/projects/${name}/scanner`, { uuid: scannerSelect.value });
      }
      toast('Saved the security settings');
      ctx.refresh();
    } catch (error) { toast(error.message, true); }
  });
  return form;
}

/** The panel, or the error that kept it from loading. */
export function securityPanelOrError(ctx, project) {
  return securityPanel(ctx, project).catch(errorBox);
}
