// The portal's shell: who is signed in, the header, and the router (#/… routes).

import { h, fill, loading, errorBox, toast } from './dom.js';
import * as api from './api.js';
import { loginPage } from './pages/login.js';
import { onboardPage } from './pages/onboard.js';
import { profilePage } from './pages/profile.js';
import { projectsPage } from './pages/projects.js';
import { projectPage } from './pages/project.js';
import { repositoryPage } from './pages/repository.js';
import { artifactPage } from './pages/artifact.js';
import { usersPage } from './pages/users.js';
import { groupsPage } from './pages/groups.js';
import { auditPage } from './pages/audit.js';
import { gcPage } from './pages/gc.js';
import { jobsPage } from './pages/jobs.js';
import { dashboardPage } from './pages/dashboard.js';
import { searchPage } from './pages/search.js';
import { globalLabelsPage } from './pages/labels.js';
import { settingsPage } from './pages/settings.js';
import { scannersPage } from './pages/scanners.js';
import { registriesPage } from './pages/registries.js';
import { replicationsPage } from './pages/replications.js';

/** What every page knows: the signed-in user ({username, sysadmin_flag}) and the registry's host. */
const ctx = { user: null, host: location.host, firstStart: false, go, refresh: render };

/** Navigates to a route. */
function go(route) {
  if (location.hash === `#${route}`) render();
  else location.hash = route;
}

const routes = [
  [/^\/login$/, () => loginPage(ctx)],
  [/^\/oidc-onboard(?:\?username=(.*))?$/, (name) => onboardPage(ctx, name)],
  [/^\/profile$/, () => profilePage(ctx)],
  [/^\/projects$/, () => projectsPage(ctx)],
  [/^\/projects\/([^/]+)\/repositories\/(.+)\/artifacts\/([\w.:-]+)$/, (p, r, a) => artifactPage(ctx, p, r, a)],
  [/^\/projects\/([^/]+)\/repositories\/(.+)$/, (p, r) => repositoryPage(ctx, p, r)],
  [/^\/projects\/([^/]+)(?:\/([a-z-]+))?$/, (p, tab) => projectPage(ctx, p, tab || 'repositories')],
  [/^\/users$/, () => usersPage(ctx)],
  [/^\/groups$/, () => groupsPage(ctx)],
  [/^\/audit$/, () => auditPage(ctx)],
  [/^\/gc$/, () => gcPage(ctx)],
  [/^\/jobs$/, () => jobsPage(ctx)],
  [/^\/dashboard$/, () => dashboardPage(ctx)],
  [/^\/search\/(.*)$/, (q) => searchPage(ctx, q)],
  [/^\/labels$/, () => globalLabelsPage(ctx)],
  [/^\/settings$/, () => settingsPage(ctx)],
  [/^\/scanners$/, () => scannersPage(ctx)],
  [/^\/registries$/, () => registriesPage(ctx)],
  [/^\/replications$/, () => replicationsPage(ctx)],
];

function header() {
  const top = document.getElementById('top');
  if (!ctx.user) { top.hidden = true; return; }
  const current = location.hash.slice(1);
  const link = (route, text) => h('a', { href: `#${route}`, 'aria-current': current.startsWith(route) ? 'page' : null }, text);
  const admin = ctx.user.sysadmin_flag;
  const search = h('input', { type: 'search', name: 'q', placeholder: 'Search projects and repositories', 'aria-label': 'Search' });
  fill(top,
    h('a', { class: 'brand', href: '#/projects' }, 'Registry'),
    h('nav', { 'aria-label': 'Main' },
      link('/projects', 'Projects'), link('/dashboard', 'Dashboard'),
      admin ? link('/users', 'Users') : null, admin ? link('/groups', 'Groups') : null, admin ? link('/audit', 'Audit log') : null,
      admin ? link('/gc', 'Garbage collection') : null, admin ? link('/jobs', 'Jobs') : null,
      admin ? link('/labels', 'Labels') : null, admin ? link('/scanners', 'Scanners') : null, admin ? link('/registries', 'Registries') : null, admin ? link('/replications', 'Replications') : null,
      admin ? link('/settings', 'Settings') : null),
    h('span', { class: 'spacer' }),
    h('form', { role: 'search', on: { submit: (e) => { e.preventDefault(); go(`/search/${encodeURIComponent(search.value)}`); } } }, search),
    h('a', { class: 'who', href: '#/profile', title: 'Your profile' }, ctx.user.username, admin ? ' (admin)' : ''),
    h('button', { type: 'button', class: 'small', on: { click: signOut } }, 'Sign out'));
  top.hidden = false;
}

async function signOut() {
  try { await api.logout(); } catch (e) { toast(e.message, true); }
  ctx.user = null;
  go('/login');
}

/** Counts renders: a render whose page answers after a later one began shows nothing. */
let renders = 0;

async function render() {
  const turn = ++renders;
  const main = document.getElementById('main');
  const route = decodeURIComponent(location.hash.slice(1)) || '/projects';
  const open = route === '/login' || route.startsWith('/oidc-onboard');
  if (!ctx.user && !open) { go('/login'); return; }
  if (ctx.user && open) { go('/projects'); return; }
  header();
  for (const [pattern, page] of routes) {
    const m = route.match(pattern);
    if (!m) continue;
    fill(main, loading());
    try {
      const content = await page(...m.slice(1));
      if (turn !== renders) return;
      fill(main, content);
    } catch (error) {
      if (turn !== renders || error.status === 401) return;
      fill(main, h('h1', {}, 'Something went wrong'), errorBox(error));
    }
    const title = main.querySelector('h1');
    document.title = title ? `${title.textContent} · Registry` : 'Registry';
    return;
  }
  fill(main, h('h1', {}, 'Not found'), h('p', {}, 'There is no page here. ', h('a', { href: '#/projects' }, 'Go to the projects.')));
}

window.addEventListener('hashchange', render);
window.addEventListener('signed-out', () => { if (ctx.user) { ctx.user = null; toast('Your session ended: sign in again.', true); go('/login'); } });
ctx.signedIn = async (user) => {
  ctx.user = user;
  await loadHost();
  go('/projects');
};

async function loadHost() {
  try {
    const info = await api.get('/systeminfo');
    if (info.registry_url) ctx.host = info.registry_url;
  } catch { /* the page's own host */ }
}

(async () => {
  try {
    const s = await api.session();
    ctx.user = s.user;
    ctx.firstStart = s.first_start;
    ctx.authMode = s.auth_mode;
    ctx.oidcName = s.oidc_name;
    if (ctx.user) await loadHost();
  } catch (error) {
    fill(document.getElementById('main'), errorBox(error));
    return;
  }
  render();
})();
