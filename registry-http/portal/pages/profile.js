// The signed-in user's own page: who they are and, for people of the OIDC provider, the CLI
// secret command-line clients (podman, skopeo, containerd) sign in with, and a new one.

import { h, field, toast, copyButton } from '../dom.js';
import * as api from '../api.js';

export async function profilePage(ctx) {
  const me = await api.get('/users/current');
  const rows = [['User name', me.username], ['E-mail', me.email || '—'], ['Full name', me.realname || '—'],
    ['System administrator', me.sysadmin_flag ? 'yes' : 'no']];
  const facts = h('dl', { class: 'facts' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const meta = me.oidc_user_meta;
  if (!meta) return h('div', {}, h('h1', {}, 'Your profile'), h('div', { class: 'panel' }, facts));
  const code = h('code', { 'data-testid': 'cli-secret', hidden: true }, meta.secret);
  const reveal = h('button', { type: 'button', class: 'small', on: { click: () => { code.hidden = !code.hidden; reveal.textContent = code.hidden ? 'Show' : 'Hide'; } } }, 'Show');
  const form = h('form', { class: 'panel', novalidate: true },
    h('h2', {}, 'New CLI secret'),
    field('Secret', { name: 'secret', type: 'password', autocomplete: 'new-password', minlength: 8 }, 'At least 8 characters; the old secret stops working at once.'),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', on: { click: () => { form.elements.secret.value = randomSecret(); form.elements.secret.type = 'text'; } } }, 'Generate'),
      h('button', { type: 'submit', class: 'primary' }, 'Set secret')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api.change('PUT', `/users/${me.user_id}/cli_secret`, { secret: form.elements.secret.value });
      toast('CLI secret set');
      ctx.refresh();
    } catch (error) { toast(error.message, true); }
  });
  return h('div', {}, h('h1', {}, 'Your profile'),
    h('div', { class: 'panel' }, facts,
      h('h2', {}, 'CLI secret'),
      h('p', {}, `Command-line clients sign in as ${me.username} with this secret as the password, e.g. podman login -u ${me.username} ${ctx.host}. It works while your identity provider's session holds.`),
      h('div', { class: 'secret' }, code, reveal, copyButton(meta.secret, 'Copy secret'))),
    form);
}

function randomSecret() {
  const bytes = new Uint8Array(24);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, '');
}
