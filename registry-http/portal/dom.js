// Building the page: every element is made with createElement and every text set with
// textContent, so a name, tag or message from a user is always text, never markup.

/** An element: h('a', {href: '#/x', class: 'c', on: {click: f}}, 'text', child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'rect', 'g', 'text', 'line', 'title', 'path'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'hidden') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** 1536 -> "1.5 KiB". */
export function size(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = Number(bytes), i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/**
 * A project's storage: a meter against its limit ("1.2 MiB of 10.0 MiB (12%)"), or the bytes
 * alone when it has none (`hard` -1).
 */
export function usage(used, hard) {
  if (hard === undefined || hard === null || hard < 0) return h('span', { class: 'usage' }, `${size(used)} (no limit)`);
  const pct = hard > 0 ? Math.min(100, Math.round((used * 100) / hard)) : 100;
  return h('span', { class: 'usage' },
    h('meter', { min: 0, max: hard, low: hard * 0.7, high: hard * 0.85, optimum: 0, value: Math.min(used, hard),
      'aria-label': `Storage used: ${pct}% of the quota` }),
    ` ${size(used)} of ${size(hard)} (${pct}%)`);
}

/** A label as a coloured chip. */
export function labelChip(label, remove = null) {
  const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
  // The colour was checked by the API (#RGB or #RRGGBB); set through the CSSOM, not markup.
  if (/^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/.test(label.color || '')) swatch.style.backgroundColor = label.color;
  return h('span', { class: 'chip label', title: label.description || label.name }, swatch, h('span', {}, label.name),
    remove ? h('button', { type: 'button', 'aria-label': `Remove label ${label.name}`, on: { click: remove } }, '×') : null);
}

/** An RFC 3339 time as the reader's local date and time ("—" when absent). */
export function when(time) {
  if (!time) return '—';
  const d = new Date(time);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1971) return '—';
  return d.toLocaleString();
}

/** sha256:abcdef0123456789… -> sha256:abcdef012345 */
export function short(digest) {
  const [algo, hex] = String(digest).split(':');
  return hex ? `${algo}:${hex.slice(0, 12)}` : String(digest);
}

/** A button that copies `text`, saying so. */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'small', 'aria-label': `${label}: ${text}`, title: text }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      toast('Copied to the clipboard');
    } catch {
      // Without clipboard access (plain HTTP), select the text for the user to copy.
      window.prompt('Copy this:', text);
    }
  });
  return button;
}

/** A short-lived message. */
export function toast(message, bad = false) {
  const box = document.getElementById('toasts');
  const el = h('div', { class: bad ? 'toast bad' : 'toast', role: bad ? 'alert' : 'status' }, message);
  box.appendChild(el);
  setTimeout(() => el.remove(), bad ? 8000 : 3500);
}

/** An error box for a failed load. */
export function errorBox(error) {
  return h('p', { class: 'error', role: 'alert' }, error && error.message ? error.message : String(error));
}

/** "Loading…" */
export function loading(what = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, what);
}

/**
 * A table: columns [{title, cell(row) -> node|string, num?, wide?}], rows, and what to say when
 * there are none.
 */
export function table(columns, rows, empty = 'Nothing here yet.', caption = null) {
  const head = h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: cls(c) }, c.title)));
  const body = rows.length
    ? rows.map((row) => h('tr', {}, columns.map((c) => h('td', { class: cls(c) }, c.cell(row)))))
    : [h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, empty))];
  return h('div', { class: 'tablewrap' },
    h('table', {}, caption ? h('caption', { class: 'hint' }, caption) : null, h('thead', {}, head), h('tbody', {}, body)));
}

function cls(column) {
  return [column.num ? 'num' : '', column.wide ? 'wide-only' : ''].filter(Boolean).join(' ') || null;
}

/** Pagination controls for `total` items. */
export function pager(total, page, pageSize, go) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('span', {}, `${total} in all · page ${page} of ${pages}`),
    h('button', { type: 'button', class: 'small', disabled: page <= 1, on: { click: () => go(page - 1) } }, '‹ Previous'),
    h('button', { type: 'button', class: 'small', disabled: page >= pages, on: { click: () => go(page + 1) } }, 'Next ›'));
}

/**
 * A modal dialog with a form: fields built by `body`, `submit(form)` run on the primary button
 * (its error shown in the dialog; the dialog stays open). Resolves when closed.
 */
export function dialog(title, body, submitLabel, submit) {
  return new Promise((resolve) => {
    const problem = h('p', { class: 'error', role: 'alert', hidden: true });
    const cancel = h('button', { type: 'button' }, submit ? 'Cancel' : 'Close');
    const primary = submit ? h('button', { type: 'submit', class: 'primary' }, submitLabel) : null;
    const form = h('form', { method: 'dialog', novalidate: true },
      h('h2', { id: 'dialog-title' }, title), body, problem, h('div', { class: 'actions' }, cancel, primary));
    const el = h('dialog', { 'aria-labelledby': 'dialog-title' }, form);
    const close = (value) => { el.close(); el.remove(); resolve(value); };
    cancel.addEventListener('click', () => close(null));
    el.addEventListener('cancel', (e) => { e.preventDefault(); close(null); });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!submit) return close(null);
      primary.disabled = true;
      problem.hidden = true;
      try {
        close(await submit(form));
      } catch (error) {
        fill(problem, error.message || String(error));
        problem.hidden = false;
        primary.disabled = false;
      }
    });
    document.body.appendChild(el);
    el.showModal();
    const first = form.querySelector('input, select, textarea, button.primary');
    if (first) first.focus();
  });
}

/** Asks a yes/no question; resolves true on yes. */
export function confirm(title, question, yes = 'Delete') {
  return dialog(title, h('p', {}, question), yes, async () => true).then(Boolean);
}

/** A labelled input: field('Name', {name: 'name', required: true}). */
export function field(label, attrs = {}, hint = null) {
  const id = `f-${attrs.name}-${Math.random().toString(36).slice(2, 8)}`;
  const control = attrs.options
    ? h('select', { id, name: attrs.name }, attrs.options.map(([value, text]) =>
        h('option', { value, selected: value === attrs.value }, text)))
    : h('input', { id, type: 'text', ...attrs });
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    hint ? h('div', { class: 'hint' }, hint) : null);
}

/** A labelled checkbox. */
export function checkbox(label, name, checked = false, value = 'on') {
  return h('label', { class: 'inline' }, h('input', { type: 'checkbox', name, checked, value }), label);
}

/** A search box for filtering a list: `onChange(text)` runs once typing pauses. */
export function filterBox(label, onChange) {
  const input = h('input', { type: 'search', placeholder: label, 'aria-label': label });
  let timer = null;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => onChange(input.value.trim()), 250);
  });
  return input;
}

/** Asks `question`; on yes runs `action`, says `done` and calls `after`; a refusal is shown. */
export async function confirmed(title, question, action, done, after, yes = 'Delete') {
  if (!await confirm(title, question, yes)) return;
  try {
    await action();
    toast(done);
    after();
  } catch (error) { toast(error.message, true); }
}
