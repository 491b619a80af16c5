// The portal end to end in headless Chromium (Debian's, driven by playwright-core): what a user
// does in the browser, with podman and skopeo doing what they do beside it. Run by
// registry-server/tests/portal.rs, which starts the registry and stops it; this script exits 0
// when every step held. Screenshots of each main page go to SCREENSHOTS.
//
// Environment: BASE_URL, ADMIN_PASSWORD, SCREENSHOTS, PODMAN (JSON: {args, env}), BIG_LAYOUT and
// SMALL_LAYOUT (OCI layouts for skopeo, tagged big and small), HOSTILE_TAG,
// HOSTILE_TEXT.

import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';

// playwright-core lives where the test command installed it (NODE_PATH; ES modules ignore it).
const { chromium } = createRequire(`${process.env.NODE_PATH}/`)('playwright-core');
const base = process.env.BASE_URL;
const host = new URL(base).host;
const shots = process.env.SCREENSHOTS;
const podman = JSON.parse(process.env.PODMAN);

function run(program, args, env = {}) {
  try {
    return execFileSync(program, args, { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`${program} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}
/** Runs a command that must fail; its error output. */
function runFailing(program, args) {
  try {
    execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return `${e.stderr || ''}${e.stdout || ''}`;
  }
  throw new Error(`${program} ${args.join(' ')} should have failed`);
}
const pod = (...args) => run('podman', [...podman.args, ...args], podman.env);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const problems = [];
const pages = [];
let step = 'start';

function begin(name) {
  step = name;
  console.log(`step: ${name}`);
}

async function newPage(width = 1280, height = 800) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  pages.push(page);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Refused requests are logged by the browser; script errors are what counts.
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`); });
  return page;
}

/** Clicks `button` and waits for a new toast saying `text`: one from an earlier click may still show. */
async function clickForToast(page, button, text) {
  await page.evaluate(() => document.querySelectorAll('#toasts .toast').forEach((t) => { t.dataset.seen = '1'; }));
  await button.click();
  await page.locator('#toasts .toast:not([data-seen])', { hasText: text }).first().waitFor();
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function signIn(page, user, password) {
  await page.goto(`${base}/`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Projects' }).waitFor();
}

try {
  const admin = await newPage();

  begin('the first-start hint and a wrong password');
  await admin.goto(`${base}/`);
  await admin.getByText('First start: sign in as').waitFor();
  await shot(admin, '01-login');
  await admin.getByLabel('User name').fill('admin');
  await admin.getByLabel('Password').fill('not the password');
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.getByText('invalid user name or password').waitFor();

  begin('sign in as admin');
  await signIn(admin, 'admin', process.env.ADMIN_PASSWORD);
  await admin.getByRole('link', { name: 'library' }).waitFor();
  const cookies = await admin.context().cookies();
  const sid = cookies.find((c) => c.name === 'sid');
  assert.ok(sid && sid.httpOnly && sid.sameSite === 'Strict', `session cookie flags: ${JSON.stringify(sid)}`);
  assert.ok(!admin.url().includes('password'), 'no secret in the URL');

  begin('create a project');
  await admin.getByRole('button', { name: 'New project' }).click();
  await admin.getByLabel('Project name').fill('team');
  await admin.getByRole('button', { name: 'Create' }).click();
  await admin.getByRole('heading', { name: /^team/ }).waitFor();
  await admin.getByText('No repositories yet').waitFor();

  begin('a user for the guest view');
  await admin.goto(`${base}/#/users`);
  await admin.getByRole('button', { name: 'New user' }).click();
  await admin.getByLabel('User name').fill('gus');
  await admin.getByLabel('E-mail').fill('gus@example.com');
  await admin.getByLabel('Full name').fill(process.env.HOSTILE_TEXT);
  await admin.getByLabel('Password').fill('guspassword1');
  await admin.getByRole('button', { name: 'Create' }).click();
  await admin.getByRole('cell', { name: 'gus', exact: true }).waitFor();
  await admin.getByRole('cell', { name: process.env.HOSTILE_TEXT, exact: true }).waitFor();
  assert.equal(await admin.locator('main img').count(), 0, 'a hostile full name is shown as text, not markup');
  await shot(admin, '02-users');

  begin('podman pushes an image into the project');
  pod('login', '--tls-verify=false', '-u', 'admin', '-p', process.env.ADMIN_PASSWORD, host);
  pod('tag', 'localhost/podtest:v1', `${host}/team/app/web:v1`);
  pod('push', '--tls-verify=false', `${host}/team/app/web:v1`);

  begin('find it in the portal with its tag and size');
  await admin.goto(`${base}/#/projects/team`);
  await admin.getByRole('link', { name: 'team/app/web' }).click();
  await admin.getByRole('heading', { name: 'team/app/web' }).waitFor();
  const row = admin.locator('tbody tr').first();
  await row.getByText('v1', { exact: true }).waitFor();
  const sizeText = await row.locator('td').nth(4).textContent();
  assert.match(sizeText, /\d+(\.\d+)? (B|KiB|MiB)/, `a size: ${sizeText}`);
  await row.getByText('Not signed').waitFor();
  await admin.getByText(`podman pull ${host}/team/app/web:TAG`).waitFor();
  await shot(admin, '03-repository');

  begin('add a tag');
  await row.getByRole('button', { name: /Add a tag/ }).click();
  await admin.getByLabel('Tag', { exact: true }).fill('stable');
  await admin.getByRole('button', { name: 'Add', exact: true }).click();
  await admin.locator('tbody tr').first().getByText('stable', { exact: true }).waitFor();
  run('skopeo', ['inspect', '--tls-verify=false', '--creds', `admin:${process.env.ADMIN_PASSWORD}`, `docker://${host}/team/app/web:stable`]);

  begin('a tag that is not a tag is refused with the reason');
  await admin.locator('tbody tr').first().getByRole('button', { name: /Add a tag/ }).click();
  await admin.getByLabel('Tag', { exact: true }).fill(process.env.HOSTILE_TAG);
  await admin.getByRole('button', { name: 'Add', exact: true }).click();
  await admin.getByRole('dialog').getByRole('alert').waitFor();
  const refusal = await admin.getByRole('dialog').getByRole('alert').textContent();
  assert.ok(refusal.includes('tag'), refusal);
  assert.equal(await admin.locator('img, script[src*="evil"]').count(), 0, 'the hostile text stayed text');
  await admin.getByRole('button', { name: 'Cancel' }).click();

  begin('add a member');
  await admin.goto(`${base}/#/projects/team/members`);
  await admin.getByRole('button', { name: 'Add member' }).click();
  await admin.getByLabel('User name').fill('gus');
  await admin.getByRole('dialog').getByLabel('Role').selectOption('3');
  await admin.getByRole('button', { name: 'Add', exact: true }).click();
  await admin.getByRole('cell', { name: 'gus', exact: true }).waitFor();
  await shot(admin, '04-members');

  begin('create a robot and use its secret with skopeo');
  await admin.goto(`${base}/#/projects/team/robots`);
  await admin.getByRole('button', { name: 'New robot account' }).click();
  await admin.getByLabel('Name', { exact: true }).fill('ci');
  await admin.getByLabel('Push').check();
  await admin.getByRole('button', { name: 'Create' }).click();
  const robotName = await admin.getByTestId('robot-name').textContent();
  const secret = await admin.getByTestId('robot-secret').textContent();
  assert.equal(robotName, 'robot$team+ci');
  assert.ok(secret.length >= 16, 'a secret is shown');
  await shot(admin, '05-robot-secret');
  await admin.getByRole('button', { name: 'Close' }).click();
  await admin.getByRole('cell', { name: 'robot$team+ci', exact: true }).waitFor();
  assert.equal(await admin.getByText(secret).count(), 0, 'the secret is shown once');
  const copied = run('skopeo', ['copy', '--dest-tls-verify=false', '--src-tls-verify=false',
    '--src-creds', `${robotName}:${secret}`, '--dest-creds', `${robotName}:${secret}`,
    `docker://${host}/team/app/web:v1`, `docker://${host}/team/app/web:copied`]);
  assert.ok(copied.includes('Writing manifest'), copied);

  begin('filter the artifacts by tag');
  await admin.goto(`${base}/#/projects/team/repositories/app%2Fweb`);
  await admin.getByRole('searchbox', { name: 'Filter by tag' }).fill('nothing-like-it');
  await admin.getByText('No artifact has a tag matching the filter.').waitFor();
  await admin.getByRole('searchbox', { name: 'Filter by tag' }).fill('stab');
  await admin.locator('tbody tr').first().getByText('stable', { exact: true }).waitFor();

  begin('delete the tag');
  await admin.goto(`${base}/#/projects/team/repositories/app%2Fweb`);
  await admin.getByRole('button', { name: 'Delete tag stable' }).click();
  await admin.getByRole('button', { name: 'Delete', exact: true }).click();
  await admin.getByText('Deleted tag stable').waitFor();
  await admin.getByRole('button', { name: 'Delete tag stable' }).waitFor({ state: 'detached' });

  begin('quota: the usage bar, and a limit set by the admin');
  await admin.goto(`${base}/#/projects/team/configuration`);
  await admin.getByRole('heading', { name: 'Quota' }).waitFor();
  await admin.getByText('(no limit)').first().waitFor();
  await admin.getByLabel('No limit').uncheck();
  await admin.getByLabel('Limit (MiB)').fill('1');
  await admin.getByRole('button', { name: 'Save quota' }).click();
  await admin.getByText('Quota saved').waitFor();
  await admin.locator('meter[aria-label^="Storage used"]').first().waitFor();
  await admin.getByText(/of 1\.00 MiB \(\d+%\)/).first().waitFor();
  await shot(admin, '06a-quota');
  await admin.goto(`${base}/#/projects`);
  await admin.locator('tbody tr', { hasText: 'team' }).locator('meter').waitFor();
  const over = runFailing('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${process.env.ADMIN_PASSWORD}`,
    `oci:${process.env.BIG_LAYOUT}:big`, `docker://${host}/team/app/big:v1`]);
  assert.ok(over.includes('quota exceeded: project team'), `the refusal names the project: ${over}`);

  begin('labels: a project label put on an artifact');
  await admin.goto(`${base}/#/projects/team/labels`);
  await admin.getByRole('button', { name: 'New label' }).click();
  await admin.getByLabel('Name', { exact: true }).fill('qa-passed');
  await admin.getByLabel('Description').fill(process.env.HOSTILE_TEXT);
  await admin.getByRole('button', { name: 'Create' }).click();
  await admin.getByText('Label created').waitFor();
  await admin.getByRole('cell', { name: process.env.HOSTILE_TEXT, exact: true }).waitFor();
  await admin.goto(`${base}/#/projects/team/repositories/app%2Fweb`);
  await admin.locator('tbody tr').first().getByRole('button', { name: /^Label / }).click();
  await admin.getByRole('dialog').getByLabel('qa-passed').check();
  await admin.getByRole('button', { name: 'Add', exact: true }).click();
  await admin.locator('tbody tr').first().getByText('qa-passed', { exact: true }).waitFor();
  await shot(admin, '06b-labels');

  begin('tag immutability: a rule, and a protected tag that cannot be deleted');
  await admin.goto(`${base}/#/projects/team/immutability`);
  await admin.getByRole('button', { name: 'New rule' }).click();
  await admin.getByLabel('Tag pattern').fill('v*');
  await admin.getByRole('button', { name: 'Add rule' }).click();
  await admin.getByText('Rule added').first().waitFor();
  await admin.getByRole('cell', { name: /tags matching v\*/ }).waitFor();
  await shot(admin, '06c-immutability');
  await admin.goto(`${base}/#/projects/team/repositories/app%2Fweb`);
  await admin.locator('tbody tr').first().getByText('immutable', { exact: true }).waitFor();
  assert.equal(await admin.getByRole('button', { name: 'Delete tag v1' }).count(), 0, 'no delete button on an immutable tag');
  const moved = runFailing('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${process.env.ADMIN_PASSWORD}`,
    `oci:${process.env.SMALL_LAYOUT}:small`, `docker://${host}/team/app/web:v1`]);
  assert.ok(/immutable \(rule \d+/.test(moved), `the refusal names the rule: ${moved}`);
  await admin.goto(`${base}/#/projects/team/immutability`);
  await admin.getByRole('button', { name: 'Disable' }).click();
  await admin.getByText('Rule disabled').waitFor();

  begin('tag retention: a rule, a dry run and its report');
  await admin.goto(`${base}/#/projects/team/retention`);
  await admin.getByText('No retention policy').waitFor();
  await admin.getByRole('button', { name: 'Add a rule' }).click();
  await admin.getByLabel('# (count or days)').fill('1');
  await admin.getByRole('button', { name: 'Add rule' }).click();
  await admin.getByText('Rule added').last().waitFor();
  await admin.getByRole('cell', { name: 'Retain the most recently pushed 1 artifacts' }).waitFor();
  await clickForToast(admin, admin.getByRole('button', { name: 'Dry run' }), 'Dry run started');
  await admin.getByRole('cell', { name: 'Success', exact: true }).first().waitFor();
  await admin.getByRole('button', { name: 'Repositories' }).first().click();
  await admin.getByRole('dialog').getByRole('cell', { name: 'team/app/web', exact: true }).waitFor();
  await admin.getByRole('dialog').getByRole('button', { name: 'Log' }).first().click();
  await admin.getByRole('dialog').getByText(/retained/).waitFor();
  await shot(admin, '06e-retention');
  await admin.getByRole('button', { name: 'Close' }).click();

  begin('system settings: the default quota of new projects');
  await admin.goto(`${base}/#/settings`);
  await admin.getByLabel('New projects have no storage limit').uncheck();
  await admin.getByLabel('Storage limit of new projects (MiB)').fill('512');
  await clickForToast(admin, admin.getByRole('button', { name: 'Save' }), 'Settings saved');
  await shot(admin, '06d-settings');

  begin('the audit log shows the changes');
  await admin.goto(`${base}/#/audit`);
  await admin.getByRole('cell', { name: 'team/app/web:stable' }).first().waitFor();
  await shot(admin, '06-audit');

  begin('scanning: a scanner registered, an image scanned, its report, and a project that refuses vulnerable images');
  await admin.goto(`${base}/#/scanners`);
  await admin.getByText('No scanner yet').waitFor();
  await admin.getByRole('button', { name: 'Add scanner' }).click();
  const scannerDialog = admin.getByRole('dialog');
  await scannerDialog.getByLabel('Name', { exact: true }).fill('fixture');
  await scannerDialog.getByLabel('Adapter URL').fill(process.env.SCANNER_URL);
  await scannerDialog.getByRole('button', { name: 'Test connection' }).click();
  await admin.getByText('Reached Fixture 1.0').waitFor();
  await scannerDialog.getByRole('button', { name: 'Add', exact: true }).click();
  await admin.getByText('Added fixture').waitFor();
  await admin.locator('tbody tr', { hasText: 'fixture' }).getByText('Healthy').waitFor();
  await admin.locator('tbody tr', { hasText: 'fixture' }).getByText('Default').waitFor();
  await shot(admin, '06f-scanners');
  await admin.goto(`${base}/#/projects/team/repositories/app%2Fweb`);
  await admin.locator('tbody tr').first().getByRole('button', { name: /^Scan / }).click();
  await admin.locator('tbody tr').first().getByRole('button', { name: /^Vulnerabilities of / }).click();
  await admin.getByRole('dialog').getByRole('link', { name: 'CVE-2026-0001' }).waitFor();
  await admin.getByRole('dialog').getByText('High', { exact: true }).first().waitFor();
  await shot(admin, '06g-vulnerabilities');
  await admin.getByRole('button', { name: 'Close' }).click();
  await admin.locator('tbody tr').first().getByRole('button', { name: /^Generate an SBOM of / }).click();
  await admin.locator('tbody tr').first().getByRole('button', { name: /^SBOM of / }).click();
  await admin.getByRole('dialog').getByRole('cell', { name: 'libfixture' }).waitFor();
  await shot(admin, '06g2-sbom');
  await admin.getByRole('button', { name: 'Close' }).click();
  await admin.goto(`${base}/#/projects/team/configuration`);
  await admin.getByLabel('Prevent vulnerable images from being pulled').check();
  await admin.getByLabel('Prevent pulling images with vulnerabilities of this severity or higher').selectOption('high');
  await clickForToast(admin, admin.getByRole('button', { name: 'Save security settings' }), 'Saved the security settings');
  await shot(admin, '06h-security');
  const vulnerable = runFailing('skopeo', ['inspect', '--tls-verify=false', '--creds', `admin:${process.env.ADMIN_PASSWORD}`,
    `docker://${host}/team/app/web:v1`]);
  assert.ok(vulnerable.includes('prevents pulling images with vulnerabilities of severity High'), `the refusal says why: ${vulnerable}`);
  await admin.getByLabel('Prevent vulnerable images from being pulled').uncheck();
  await clickForToast(admin, admin.getByRole('button', { name: 'Save security settings' }), 'Saved the security settings');

  begin('the page shown is the last one asked for, though an earlier page answers after it');
  // The project's answer is held until the registries page is up; when it comes, the project page
  // it belonged to must not replace the registries page.
  let answerProject;
  const projectHeld = new Promise((resolve) => { answerProject = resolve; });
  const isProject = (url) => url.pathname === '/api/v2.0/projects/team';
  await admin.route(isProject, async (route) => { await projectHeld; await route.continue(); });
  const projectAsked = admin.waitForRequest((request) => isProject(new URL(request.url())));
  await admin.goto(`${base}/#/projects/team`);
  await projectAsked;
  await admin.goto(`${base}/#/registries`);
  await admin.getByText('No registry yet').waitFor();
  // The project page asks for its repositories once it has the project, in the same turn in which
  // it hands its content to the router; one round trip into the page later the router has decided.
  const tabAsked = admin.waitForRequest((request) => new URL(request.url()).pathname === '/api/v2.0/projects/team/repositories');
  answerProject();
  await tabAsked;
  await admin.evaluate(() => new Promise((resolve) => { setTimeout(resolve, 0); }));
  await admin.unroute(isProject);
  assert.ok(await admin.getByText('No registry yet').isVisible(), 'the registries page stays');
  assert.equal(await admin.locator('main h1').textContent(), 'Registries');

  begin('registries: another registry (this one, through its token service) added after a connection test');
  await admin.goto(`${base}/#/registries`);
  await admin.getByText('No registry yet').waitFor();
  await admin.getByRole('button', { name: 'Add registry' }).click();
  const registryDialog = admin.getByRole('dialog');
  await registryDialog.getByLabel('Name', { exact: true }).fill('self');
  await registryDialog.getByLabel('Type').selectOption('harbor');
  await registryDialog.getByLabel('URL').fill(base);
  await registryDialog.getByLabel('Access key (user)').fill('admin');
  await registryDialog.getByLabel('Access secret (password or token)').fill('wrong-password');
  await registryDialog.getByRole('button', { name: 'Test connection' }).click();
  await admin.getByText(/refuses the credentials of "admin"/).first().waitFor();
  await registryDialog.getByLabel('Access secret (password or token)').fill(process.env.ADMIN_PASSWORD);
  await registryDialog.getByRole('button', { name: 'Test connection' }).click();
  await admin.getByText('The registry answers and accepts the credential').waitFor();
  await registryDialog.getByRole('button', { name: 'Add', exact: true }).click();
  await admin.locator('tbody tr', { hasText: 'self' }).getByText('Healthy').waitFor();
  await shot(admin, '06i-registries');

  begin('replication: a push-based policy copying team/app/web to team/web through that registry, run and its tasks');
  await admin.goto(`${base}/#/replications`);
  await admin.getByText('No replication policy yet.').waitFor();
  await admin.getByRole('button', { name: 'New replication policy' }).click();
  const policyDialog = admin.getByRole('dialog');
  await policyDialog.getByLabel('Name', { exact: true }).fill('copy-web');
  await policyDialog.getByLabel('Repositories (pattern)').fill('team/app/**');
  await policyDialog.getByLabel('Destination namespace').fill('team');
  await policyDialog.getByLabel('Flattening').selectOption('-1');
  await policyDialog.getByLabel('Bandwidth (KiB/s)').fill('65536');
  await policyDialog.getByLabel('Copy by chunk').check();
  await policyDialog.getByRole('button', { name: 'Save' }).click();
  await admin.getByText('Saved copy-web').waitFor();
  await admin.getByText('65536 KiB/s').waitFor();
  await admin.getByRole('button', { name: 'Replicate copy-web' }).click();
  await admin.getByRole('status').filter({ hasText: 'Succeed' }).first().waitFor();
  await admin.getByRole('button', { name: /^Tasks of execution / }).first().click();
  await admin.getByRole('dialog').getByText('team/web:v1').waitFor();
  await shot(admin, '06j-replication');
  await admin.getByRole('button', { name: 'Close' }).click();

  begin('a proxy-cache project of that registry: a pull through it is served and cached');
  await admin.goto(`${base}/#/projects`);
  await admin.getByRole('button', { name: 'New project' }).click();
  const proxyDialog = admin.getByRole('dialog');
  await proxyDialog.getByLabel('Project name').fill('cache');
  await proxyDialog.getByLabel('Proxy cache of').selectOption({ label: `self (${base})` });
  await proxyDialog.getByRole('button', { name: 'Create' }).click();
  await admin.getByText('Proxy cache of registry').waitFor();
  pod('pull', '--tls-verify=false', `${host}/cache/team/app/web:v1`);
  // The cache stores the manifest once its blobs are in: look again until it shows.
  for (let i = 0; i < 60; i += 1) {
    await admin.goto(`${base}/#/projects/cache`);
    await admin.reload();
    if (await admin.getByRole('link', { name: 'cache/team/app/web' }).count()) break;
    await admin.waitForTimeout(250);
  }
  await admin.getByRole('link', { name: 'cache/team/app/web' }).waitFor();
  await shot(admin, '06k-proxy-cache');

  begin('garbage collection: a dry run');
  await admin.goto(`${base}/#/gc`);
  await clickForToast(admin, admin.getByRole('button', { name: 'Dry run' }), 'Dry run started');
  await admin.locator('tbody tr').first().getByText('Yes').waitFor();
  await shot(admin, '07-gc');

  begin('the job service shows the dry run on its queue');
  await admin.goto(`${base}/#/jobs`);
  await admin.getByRole('cell', { name: 'gc', exact: true }).first().waitFor();
  await shot(admin, '07b-jobs');

  begin('the dashboard draws its charts');
  await admin.goto(`${base}/#/dashboard`);
  await admin.locator('svg[aria-label^="Pushes and pulls per day"]').waitFor();
  await admin.locator('svg[aria-label^="Storage by project"]').waitFor();
  const storage = await admin.locator('svg[aria-label^="Storage by project"]').getAttribute('aria-label');
  assert.ok(/team \d/.test(storage), storage);
  await shot(admin, '08-dashboard');

  begin('projects page and a narrow window');
  await admin.goto(`${base}/#/projects`);
  await shot(admin, '09-projects');
  const narrow = await newPage(420, 800);
  await signIn(narrow, 'admin', process.env.ADMIN_PASSWORD);
  await narrow.goto(`${base}/#/projects/team/repositories/app%2Fweb`);
  await narrow.getByRole('heading', { name: 'team/app/web' }).waitFor();
  const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling of the page at 420 px: ${overflow}`);
  await shot(narrow, '10-narrow');

  begin('keyboard: tab to the search box and search');
  await admin.goto(`${base}/#/projects`);
  await admin.getByRole('heading', { name: 'Projects' }).waitFor();
  await admin.getByRole('searchbox', { name: 'Search' }).focus();
  await admin.keyboard.type('web');
  await admin.keyboard.press('Enter');
  await admin.getByRole('link', { name: 'team/app/web', exact: true }).waitFor();

  begin('a change without the CSRF token is refused');
  const forged = await admin.evaluate(async () => {
    const r = await fetch('/api/v2.0/projects', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ project_name: 'forged' }) });
    return r.status;
  });
  assert.equal(forged, 403);

  begin('sign out');
  await admin.getByRole('button', { name: 'Sign out' }).click();
  await admin.getByRole('heading', { name: 'Sign in to the registry' }).waitFor();
  const after = await admin.evaluate(async () => (await fetch('/api/v2.0/users/current', { headers: { 'X-Requested-With': 'XMLHttpRequest' } })).status);
  assert.equal(after, 401, 'signed out');

  begin('the guest sees, and may not change');
  const guest = await newPage();
  await signIn(guest, 'gus', 'guspassword1');
  await guest.getByRole('link', { name: 'team' }).click();
  await guest.getByRole('tab', { name: 'Members' }).waitFor();
  assert.equal(await guest.getByRole('tab', { name: 'Robot accounts' }).count(), 0, 'no robots tab for a guest');
  await guest.getByRole('link', { name: 'team/app/web' }).click();
  await guest.getByRole('heading', { name: 'team/app/web' }).waitFor();
  await guest.locator('tbody tr').first().getByText('v1', { exact: true }).waitFor();
  assert.equal(await guest.getByRole('button', { name: /Delete|Add a tag/ }).count(), 0, 'no buttons for what a guest may not do');
  assert.equal(await guest.getByRole('link', { name: 'Users' }).count(), 0, 'no users page for a guest');
  await shot(guest, '11-guest-repository');
  const refused = await guest.evaluate(async (csrf) => {
    const s = await (await fetch('/c/session')).json();
    const r = await fetch('/api/v2.0/projects/team/repositories/app%252Fweb/artifacts/v1/tags', { method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Harbor-CSRF-Token': s.csrf_token }, body: JSON.stringify({ name: 'x' }) });
    return r.status;
  });
  assert.equal(refused, 403, 'and the API refuses it anyway');
  await guest.getByRole('button', { name: 'Sign out' }).click();
  await guest.getByRole('heading', { name: 'Sign in to the registry' }).waitFor();

  begin('a Helm chart shown for what it is: its README rendered safely, its values and dependencies');
  const viewer = await newPage();
  await signIn(viewer, 'admin', process.env.ADMIN_PASSWORD);
  await viewer.goto(`${base}/#/projects/helm/repositories/demo`);
  await viewer.getByText('demo 1.2.3').waitFor();
  await viewer.locator('.badge.kind-chart').first().waitFor();
  await viewer.getByLabel('Filter by type').selectOption('IMAGE');
  await viewer.getByText('No artifacts').waitFor();
  await viewer.getByLabel('Filter by type').selectOption('CHART');
  await viewer.getByRole('link', { name: /^View sha256:/ }).first().click();
  await viewer.getByRole('heading', { name: 'demo 1.2.3' }).waitFor();
  await viewer.locator('.markdown h2', { hasText: 'Demo chart' }).waitFor();
  await viewer.locator('.markdown td code', { hasText: 'replicaCount' }).waitFor();
  await viewer.locator('.markdown pre code', { hasText: 'replicaCount: 2' }).waitFor();
  await viewer.locator('.markdown', { hasText: '<script>window.owned = true</script>' }).waitFor();
  assert.equal(await viewer.locator('.markdown script, .markdown img, .markdown [onerror]').count(), 0, 'no markup from the README');
  assert.equal(await viewer.locator('.markdown a').count(), 1, 'only the https link is a link');
  assert.equal(await viewer.locator('.markdown a').getAttribute('href'), 'https://example.com/docs');
  assert.equal(await viewer.evaluate(() => window.owned), undefined, 'nothing of the README ran');
  await shot(viewer, '15-chart-readme');
  await viewer.getByRole('tab', { name: 'Values' }).click();
  await viewer.getByLabel('values.yaml').getByText('replicaCount: 2').waitFor();
  await viewer.getByRole('tab', { name: 'Dependencies' }).click();
  await viewer.getByRole('cell', { name: 'redis', exact: true }).waitFor();
  await viewer.getByRole('tab', { name: 'Summary' }).click();
  await viewer.getByText(`helm repo add helm http://${host}/chartrepo/helm`).waitFor();
  const index = await (await fetch(`${base}/chartrepo/helm/index.yaml`)).text();
  assert.ok(index.includes('charts/demo-1.2.3.tgz'), `the classic repository lists it: ${index}`);

  begin('a chart whose README is over the limit says so; an image shows its layers and history');
  await viewer.goto(`${base}/#/projects/helm/repositories/huge/artifacts/0.1.0`);
  await viewer.getByText(/README.md of the chart is 5.0 MiB, more than the limit of 4.0 MiB/).waitFor();
  await viewer.goto(`${base}/#/projects/helm/repositories/app/artifacts/v1`);
  await viewer.getByText('linux/arm64').waitFor();
  await viewer.getByRole('tab', { name: 'Layers' }).click();
  await viewer.getByText(/^1 layer, /).waitFor();
  await viewer.getByRole('tab', { name: 'Build history' }).click();
  await viewer.getByText('COPY app /app').waitFor();
  await shot(viewer, '16-image-history');

  begin('signing in through LDAP: the settings tried, saved, and a person of the directory signs in');
  const keeper = await newPage();
  await signIn(keeper, 'admin', process.env.ADMIN_PASSWORD);
  await keeper.goto(`${base}/#/settings`);
  await keeper.getByLabel('Sign in with').selectOption('ldap_auth');
  await keeper.getByLabel('LDAP URL').fill(process.env.LDAP_URL);
  await keeper.getByLabel('Search DN').fill(process.env.LDAP_ROOT_DN);
  await keeper.getByLabel('Search password').fill('wrong');
  await keeper.getByLabel('Base DN', { exact: true }).fill(`ou=people,${process.env.LDAP_BASE}`);
  await keeper.getByLabel('Filter', { exact: true }).fill('(objectClass=inetOrgPerson)');
  await keeper.getByLabel('Group base DN').fill(`ou=groups,${process.env.LDAP_BASE}`);
  await keeper.getByRole('button', { name: 'Test LDAP server' }).click();
  await keeper.getByText(/cannot be used: .*refuses the search DN/).waitFor();
  await keeper.getByLabel('Search password').fill(process.env.LDAP_ROOT_PASSWORD);
  await keeper.getByRole('button', { name: 'Test LDAP server' }).click();
  await keeper.getByText('these settings work').waitFor();
  await clickForToast(keeper, keeper.getByRole('button', { name: 'Save' }), 'Settings saved');
  await shot(keeper, '12-ldap-settings');

  begin('an LDAP group made by its DN and added to a project: its people get the role');
  await keeper.goto(`${base}/#/groups`);
  await keeper.getByRole('button', { name: 'New group' }).click();
  await keeper.getByLabel('LDAP group DN (LDAP groups)').fill(`cn=developers,ou=groups,${process.env.LDAP_BASE}`);
  await keeper.getByRole('button', { name: 'Create', exact: true }).click();
  await keeper.getByRole('cell', { name: 'developers', exact: true }).waitFor();
  await shot(keeper, '13-groups');
  await keeper.goto(`${base}/#/projects/team/members`);
  await keeper.getByRole('button', { name: 'Add group' }).click();
  await keeper.getByLabel('Group name, or an LDAP group\'s DN').fill('developers');
  await keeper.getByRole('dialog').getByLabel('Role').selectOption('2');
  await keeper.getByRole('button', { name: 'Add', exact: true }).click();
  await keeper.locator('tbody tr', { hasText: 'developers' }).getByRole('cell', { name: 'Group', exact: true }).waitFor();
  const person = await newPage();
  await signIn(person, 'alice', 'alice-password');
  const me = await person.evaluate(async () => (await (await fetch('/api/v2.0/users/current', { headers: { 'X-Requested-With': 'XMLHttpRequest' } })).json()));
  assert.equal(me.email, 'alice@example.org', 'made from the directory');
  await person.goto(`${base}/#/projects/team/members`);
  await person.getByRole('cell', { name: 'developers', exact: true }).waitFor();

  begin('signing in through an OIDC provider: the settings tried and saved, a person chooses a name and sees their CLI secret');
  await keeper.goto(`${base}/#/settings`);
  await keeper.getByLabel('Sign in with').selectOption('oidc_auth');
  await keeper.getByLabel('Provider name').fill('Test ID');
  await keeper.getByLabel('Issuer URL').fill(`${process.env.OIDC_ISSUER}/nowhere`);
  await keeper.getByRole('button', { name: 'Test OIDC server' }).click();
  await keeper.getByText(/cannot be used: .*discovery failed/).waitFor();
  await keeper.getByLabel('Issuer URL').fill(process.env.OIDC_ISSUER);
  await keeper.getByRole('button', { name: 'Test OIDC server' }).click();
  await keeper.getByText('its discovery works').waitFor();
  await keeper.getByLabel('Client ID').fill(process.env.OIDC_CLIENT_ID);
  await keeper.getByLabel('Client secret').fill(process.env.OIDC_CLIENT_SECRET);
  await keeper.getByLabel('Scopes').fill('openid,profile,email,groups,offline_access');
  await clickForToast(keeper, keeper.getByRole('button', { name: 'Save' }), 'Settings saved');
  const jose = await newPage();
  await jose.goto(`${base}/`);
  await jose.getByRole('link', { name: 'Sign in with Test ID' }).click();
  await jose.locator('input[name="login"]').fill('jose');
  await jose.locator('input[name="password"]').fill('any password');
  await jose.locator('button[type="submit"]').click();
  await jose.waitForURL((url) => url.href.startsWith(base) || url.pathname.startsWith('/interaction'));
  if (!jose.url().startsWith(base)) await jose.getByRole('button', { name: 'Continue' }).click();
  await jose.getByRole('heading', { name: 'Choose your user name' }).waitFor();
  assert.equal(await jose.getByLabel('User name').inputValue(), 'jose', 'the provider\'s name suggested');
  await jose.getByLabel('User name').fill('admin');
  await jose.getByRole('button', { name: 'Continue' }).click();
  await jose.getByText(/taken/).waitFor();
  await jose.getByLabel('User name').fill('jose.nunez');
  await jose.getByRole('button', { name: 'Continue' }).click();
  await jose.getByRole('heading', { name: 'Projects' }).waitFor();
  await jose.getByRole('link', { name: 'jose.nunez' }).click();
  await jose.getByRole('heading', { name: 'Your profile' }).waitFor();
  await jose.getByText('José Núñez').waitFor();
  await jose.getByRole('button', { name: 'Show' }).click();
  const cliSecret = await jose.getByTestId('cli-secret').textContent();
  assert.ok(cliSecret.length >= 16, 'a CLI secret');
  await shot(jose, '14-cli-secret');
  const cli = await fetch(`${base}/api/v2.0/users/current`, { headers: { Authorization: `Basic ${Buffer.from(`jose.nunez:${cliSecret}`).toString('base64')}` } });
  assert.equal(cli.status, 200, 'command-line clients sign in with it');

  assert.deepEqual(problems, [], 'no script errors');
  console.log('portal end to end: every step held');
} catch (error) {
  console.error(`failed at: ${step}`);
  for (const [i, page] of pages.entries()) {
    await page.screenshot({ path: `${shots}/failure-${i}.png`, fullPage: true }).catch(() => {});
    console.error(`page ${i} at ${page.url()}`);
    const shown = await page.locator('#main').innerText({ timeout: 1000 }).catch(() => '(unreadable)');
    console.error(`  shows: ${shown.replace(/\s+/g, ' ').slice(0, 600)}`);
  }
  console.error(error);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
