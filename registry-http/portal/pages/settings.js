// System settings (system administrators): quotas of new projects and their warning threshold,
// webhook targets on private addresses, audit log forwarding.

import { h, field, checkbox, toast, size } from '../dom.js';
import * as api from '../api.js';

const MIB = 1024 * 1024;

export async function settingsPage() {
  const current = await api.get('/configurations');
  const value = (key) => (current[key] || {}).value;
  const perProject = value('storage_per_project');
  const form = h('form', { class: 'panel', novalidate: true },
    h('h2', {}, 'Quotas'),
    checkbox('New projects have no storage limit', 'unlimited', perProject < 0),
    field('Storage limit of new projects (MiB)', { name: 'limit', type: 'number', min: 1, value: perProject > 0 ? Math.round(perProject / MIB) : 1024 },
      perProject > 0 ? `Now ${size(perProject)}.` : 'Now none.'),
    field('Warn at this percentage of a quota (QUOTA_WARNING)', { name: 'warn', type: 'number', min: 1, max: 100, value: value('quota_warning_percent') }),
    h('h2', {}, 'Webhooks and audit'),
    checkbox('Webhook targets may be private or loopback addresses', 'private', value('webhook_allow_private_targets')),
    field('Forward audit records to (syslog)', { name: 'syslog', value: value('audit_log_forward_endpoint') || '', placeholder: 'tcp://logs.example:10514' }),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary' }, 'Save')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const el = form.elements;
    const mib = Number(el.limit.value);
    if (!el.unlimited.checked && !(mib >= 1)) { toast('Enter a limit of at least 1 MiB, or choose no limit.', true); return; }
    try {
      await api.change('PUT', '/configurations', {
        storage_per_project: el.unlimited.checked ? -1 : Math.round(mib * MIB),
        quota_warning_percent: Number(el.warn.value),
        webhook_allow_private_targets: el.private.checked,
        audit_log_forward_endpoint: el.syslog.value.trim(),
      });
      toast('Settings saved');
    } catch (error) { toast(error.message, true); }
  });
  return h('div', {}, h('h1', {}, 'Settings'), form);
}
