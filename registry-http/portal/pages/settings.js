// System settings (system administrators): quotas of new projects and their warning threshold,
// webhook targets on private addresses, audit log forwarding, and how people sign in (this
// registry's passwords, an LDAP directory or an OIDC provider, each tried before it is saved).

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
    field('Sign in with', { name: 'mode', options: [['db_auth', 'Passwords kept here'], ['ldap_auth', 'An LDAP directory'], ['oidc_auth', 'An OIDC provider']], value: value('auth_mode') || 'db_auth' },
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
      h('button', { type: 'button', on: { click: () => tryLdap() } }, 'Test LDAP server')),
    h('h2', {}, 'OIDC provider'),
    field('Provider name', { name: 'oidc_name', value: value('oidc_name') || '', placeholder: 'Company SSO' }, 'Shown on the sign-in button.'),
    field('Issuer URL', { name: 'oidc_endpoint', value: value('oidc_endpoint') || '', placeholder: 'https://id.example.org' }),
    field('Client ID', { name: 'oidc_client_id', value: value('oidc_client_id') || '' }),
    field('Client secret', { name: 'oidc_client_secret', type: 'password', autocomplete: 'new-password', placeholder: 'unchanged' }),
    field('Scopes', { name: 'oidc_scope', value: value('oidc_scope') || 'openid,profile,email,offline_access' }, 'Comma-separated; offline_access lets CLI secrets outlive the first access token.'),
    field('User name claim', { name: 'oidc_user_claim', value: value('oidc_user_claim') || '', placeholder: 'preferred_username' }),
    field('Groups claim', { name: 'oidc_groups_claim', value: value('oidc_groups_claim') || 'groups' }),
    field('Admin group', { name: 'oidc_admin_group', value: value('oidc_admin_group') || '' }, 'Members of this provider group are system administrators here.'),
    checkbox('Verify the provider\'s certificate', 'oidc_verify_cert', value('oidc_verify_cert') !== false),
    checkbox('Make users at their first sign-in without asking for a name', 'oidc_auto_onboard', value('oidc_auto_onboard') === true),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', on: { click: () => tryOidc() } }, 'Test OIDC server'),
      h('button', { type: 'submit', class: 'primary' }, 'Save')));

  function oidcOf(el) {
    const out = { oidc_name: el.oidc_name.value.trim(), oidc_endpoint: el.oidc_endpoint.value.trim(), oidc_client_id: el.oidc_client_id.value.trim(),
      oidc_scope: el.oidc_scope.value.trim(), oidc_user_claim: el.oidc_user_claim.value.trim(), oidc_groups_claim: el.oidc_groups_claim.value.trim(),
      oidc_admin_group: el.oidc_admin_group.value.trim(), oidc_verify_cert: el.oidc_verify_cert.checked, oidc_auto_onboard: el.oidc_auto_onboard.checked };
    if (el.oidc_client_secret.value) out.oidc_client_secret = el.oidc_client_secret.value;
    return out;
  }

  async function tryOidc() {
    try {
      await api.change('POST', '/system/oidc/ping', { url: form.elements.oidc_endpoint.value.trim(), verify_cert: form.elements.oidc_verify_cert.checked });
      toast('The OIDC provider answered: its discovery works');
    } catch (error) { toast(`The OIDC provider cannot be used: ${error.message}`, true); }
  }

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
        ...(el.mode.value === 'oidc_auth' || el.oidc_endpoint.value.trim() ? oidcOf(el) : {}),
      });
      toast('Settings saved');
    } catch (error) { toast(error.message, true); }
  });
  return h('div', {}, h('h1', {}, 'Settings'), form);
}
