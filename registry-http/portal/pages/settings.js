// System settings (system administrators): quotas of new projects and their warning threshold,
// webhook targets on private addresses, audit log forwarding, and how people sign in (this
// registry's passwords, or an LDAP directory, tried before it is saved).

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
    h('h2', {}, 'Authentication'),
    field('Sign in with', { name: 'mode', options: [['db_auth', 'Passwords kept here'], ['ldap_auth', 'An LDAP directory']], value: value('auth_mode') || 'db_auth' },
      'The system administrators made here keep their passwords in either mode.'),
    field('LDAP URL', { name: 'ldap_url', value: value('ldap_url') || '', placeholder: 'ldaps://ldap.example.org' }),
    field('Search DN', { name: 'ldap_search_dn', value: value('ldap_search_dn') || '', placeholder: 'cn=reader,dc=example,dc=org' }),
    field('Search password', { name: 'ldap_search_password', type: 'password', autocomplete: 'new-password', placeholder: 'unchanged' }),
    field('Base DN', { name: 'ldap_base_dn', value: value('ldap_base_dn') || '', placeholder: 'ou=people,dc=example,dc=org' }),
    field('Filter', { name: 'ldap_filter', value: value('ldap_filter') || '', placeholder: '(objectClass=person)' }),
    field('UID attribute', { name: 'ldap_uid', value: value('ldap_uid') || 'uid' }),
    field('Scope', { name: 'ldap_scope', options: [['0', 'Base'], ['1', 'One level'], ['2', 'Subtree']], value: String(value('ldap_scope') ?? 2) }),
    field('Admin group DN', { name: 'ldap_group_admin_dn', value: value('ldap_group_admin_dn') || '' }, 'Its members are system administrators here.'),
    field('Group base DN', { name: 'ldap_group_base_dn', value: value('ldap_group_base_dn') || '', placeholder: 'ou=groups,dc=example,dc=org' }, 'Where groups naming a person as a member are found (besides their memberOf).'),
    field('Group filter', { name: 'ldap_group_search_filter', value: value('ldap_group_search_filter') || '', placeholder: '(objectClass=groupOfNames)' }),
    field('Group name attribute', { name: 'ldap_group_attribute_name', value: value('ldap_group_attribute_name') || 'cn' }),
    checkbox('Verify the server\'s certificate', 'ldap_verify_cert', value('ldap_verify_cert') !== false),
    checkbox('Upgrade ldap:// with StartTLS', 'ldap_starttls', value('ldap_starttls') === true),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', on: { click: () => tryLdap() } }, 'Test LDAP server'),
      h('button', { type: 'submit', class: 'primary' }, 'Save')));

  function ldapOf(el) {
    const out = { ldap_url: el.ldap_url.value.trim(), ldap_search_dn: el.ldap_search_dn.value.trim(), ldap_base_dn: el.ldap_base_dn.value.trim(),
      ldap_filter: el.ldap_filter.value.trim(), ldap_uid: el.ldap_uid.value.trim(), ldap_scope: Number(el.ldap_scope.value),
      ldap_group_admin_dn: el.ldap_group_admin_dn.value.trim(), ldap_group_base_dn: el.ldap_group_base_dn.value.trim(),
      ldap_group_search_filter: el.ldap_group_search_filter.value.trim(), ldap_group_attribute_name: el.ldap_group_attribute_name.value.trim(),
      ldap_verify_cert: el.ldap_verify_cert.checked, ldap_starttls: el.ldap_starttls.checked };
    if (el.ldap_search_password.value) out.ldap_search_password = el.ldap_search_password.value;
    return out;
  }

  async function tryLdap() {
    try {
      const answer = await api.change('POST', '/ldap/ping', ldapOf(form.elements));
      if (answer && answer.success) toast('The LDAP server answered: these settings work');
      else toast(`The LDAP server cannot be used: ${(answer && answer.message) || 'no answer'}`, true);
    } catch (error) { toast(error.message, true); }
  }
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
        auth_mode: el.mode.value,
        ...(el.mode.value === 'ldap_auth' || el.ldap_url.value.trim() ? ldapOf(el) : {}),
      });
      toast('Settings saved');
    } catch (error) { toast(error.message, true); }
  });
  return h('div', {}, h('h1', {}, 'Settings'), form);
}
