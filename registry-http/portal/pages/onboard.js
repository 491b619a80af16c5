// The first sign-in through the OIDC provider when onboarding is not automatic: the person
// chooses their user name here (the provider's suggestion filled in).

import { h, field, fill } from '../dom.js';
import * as api from '../api.js';

export function onboardPage(ctx, suggested) {
  const problem = h('p', { class: 'error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Continue');
  const form = h('form', { class: 'panel', novalidate: true },
    field('User name', { name: 'username', value: suggested || '', autocomplete: 'username', required: true },
      'Letters, digits, ".", "_", "-" and "@". Command-line clients sign in with it and your CLI secret.'),
    problem, h('div', { class: 'toolbar' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const username = form.elements.username.value.trim();
    if (!username) { fill(problem, 'Choose a user name.'); problem.hidden = false; return; }
    submit.disabled = true;
    try {
      const user = await api.onboard(username);
      await ctx.signedIn(user);
    } catch (error) {
      fill(problem, error.message);
      problem.hidden = false;
      submit.disabled = false;
    }
  });
  return h('div', { class: 'login' }, h('h1', {}, 'Choose your user name'),
    h('p', {}, 'You signed in through your identity provider for the first time.'), form);
}
