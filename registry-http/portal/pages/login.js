// Sign in with the same accounts as `podman login` (and the same lockout).

import { h, field, fill } from '../dom.js';
import * as api from '../api.js';

export function loginPage(ctx) {
  const problem = h('p', { class: 'error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'panel', novalidate: true },
    field('User name', { name: 'principal', autocomplete: 'username', required: true }),
    field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    problem, h('div', { class: 'toolbar' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const principal = form.elements.principal.value.trim();
    const password = form.elements.password.value;
    if (!principal || !password) {
      fill(problem, 'Enter your user name and password.');
      problem.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      const user = await api.login(principal, password);
      await ctx.signedIn(user);
    } catch (error) {
      fill(problem, error.message);
      problem.hidden = false;
      submit.disabled = false;
      form.elements.password.value = '';
      form.elements.password.focus();
    }
  });
  // Through the OIDC provider, people sign in there; the system administrators made here keep
  // their passwords.
  const provider = ctx.authMode === 'oidc_auth'
    ? h('div', { class: 'panel' },
      h('a', { class: 'button primary', href: `/c/oidc/login?redirect_url=${encodeURIComponent('/#/projects')}` },
        `Sign in with ${ctx.oidcName || 'your identity provider'}`),
      h('p', { class: 'hint' }, 'System administrators of this registry sign in with their passwords below.'))
    : null;
  return h('div', { class: 'login' },
    h('h1', {}, 'Sign in to the registry'),
    provider,
    ctx.firstStart ? h('p', { class: 'notice', role: 'note' },
      'First start: sign in as ', h('strong', {}, 'admin'), ' with the password the server printed when it ',
      'first started, then change it (Users → admin, or PUT /api/v2.0/users/{id}/password).') : null,
    form);
}
