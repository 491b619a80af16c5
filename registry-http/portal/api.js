// The management API (/api/v2.0) and the session endpoints (/c/…), as the portal calls them.
// The session cookie is HttpOnly: the page never sees it. The CSRF token it is given goes with
// every change.

let csrf = null;

/** An answer the API refused: its status and Harbor's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function refusal(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.errors && body.errors[0] && body.errors[0].message) message = body.errors[0].message;
  } catch { /* not JSON */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent('signed-out'));
  return new ApiError(response.status, message);
}

async function send(method, url, body) {
  // X-Requested-With: a 401 comes without a Basic challenge (no browser password dialog).
  const headers = { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-Harbor-CSRF-Token'] = csrf;
  const response = await fetch(url, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await refusal(response);
  const text = await response.text();
  return { data: text ? JSON.parse(text) : null, response };
}

/** GET a path under /api/v2.0: its JSON. */
export async function get(path) {
  return (await send('GET', `/api/v2.0${path}`)).data;
}

/** GET a path under /api/v2.0 that answers plain text (a job's log). */
export async function text(path) {
  const response = await fetch(`/api/v2.0${path}`, { credentials: 'same-origin', headers: { 'X-Requested-With': 'XMLHttpRequest' } });
  if (!response.ok) throw await refusal(response);
  return response.text();
}

/** GET one page of a list: {items, total}. */
export async function list(path, page = 1, pageSize = 15, query = {}) {
  const params = new URLSearchParams({ ...query, page: String(page), page_size: String(pageSize) });
  const sep = path.includes('?') ? '&' : '?';
  const { data, response } = await send('GET', `/api/v2.0${path}${sep}${params}`);
  const total = Number(response.headers.get('X-Total-Count') || (data ? data.length : 0));
  return { items: data || [], total };
}

/** POST, PUT, PATCH or DELETE a path under /api/v2.0: its JSON (or null). */
export async function change(method, path, body) {
  return (await send(method, `/api/v2.0${path}`, body)).data;
}

/** Who is signed in: {user, csrf_token, first_start, accounts}. */
export async function session() {
  const { data } = await send('GET', '/c/session');
  csrf = data.csrf_token || null;
  return data;
}

/** Signs in; the user. */
export async function login(principal, password) {
  const { data } = await send('POST', '/c/login', { principal, password });
  csrf = data.csrf_token;
  return data;
}

/** Makes the person the OIDC provider signed in a user named `username`; the user. */
export async function onboard(username) {
  const { data } = await send('POST', '/c/oidc/onboard', { username });
  csrf = data.csrf_token;
  return data;
}

/** Signs out. */
export async function logout() {
  await send('POST', '/c/log_out');
  csrf = null;
}

/** A repository name inside its project, as Harbor's paths want it (slashes encoded twice). */
export function repoPath(project, repository) {
  const inside = repository.startsWith(`${project}/`) ? repository.slice(project.length + 1) : repository;
  return `/projects/${encodeURIComponent(project)}/repositories/${encodeURIComponent(encodeURIComponent(inside))}`;
}

/** Harbor's role ids. */
export const ROLES = { 1: 'Project Admin', 4: 'Maintainer', 2: 'Developer', 3: 'Guest', 5: 'Limited Guest' };
