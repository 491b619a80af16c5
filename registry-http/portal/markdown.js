// Markdown (a chart's README) rendered safely: every node is made with createElement and every
// text set as text, so raw HTML in the README shows as the characters it is and never runs.
// Links keep only http(s) and mailto targets; images are shown as links (a README
// cannot make the browser fetch anything). Covers what READMEs use: headings, paragraphs,
// emphasis, code spans and fenced blocks, lists, quotes, rules and pipe tables.

import { h } from './dom.js';

/** The rendered document, as an element. */
export function renderMarkdown(text) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  return h('div', { class: 'markdown' }, blocks(lines));
}

function blocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*$/.test(line)) { i++; continue; }
    const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)/);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      out.push(h('pre', {}, h('code', { 'data-lang': fence[2] || null }, body.join('\n'))));
      continue;
    }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
    if (heading) {
      // README headings sit below the page's own (h1 is the artifact).
      const level = Math.min(6, heading[1].length + 1);
      out.push(h(`h${level}`, {}, inline(heading[2])));
      i++;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) { out.push(h('hr')); i++; continue; }
    if (/^\s*>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ''));
      out.push(h('blockquote', {}, blocks(quoted)));
      continue;
    }
    if (isTableStart(lines, i)) {
      const head = cells(lines[i]);
      i += 2;
      const rows = [];
      while (i < lines.length && lines[i].includes('|') && lines[i].trim()) rows.push(cells(lines[i++]));
      out.push(h('div', { class: 'tablewrap' }, h('table', {},
        h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, inline(c))))),
        h('tbody', {}, rows.map((r) => h('tr', {}, head.map((_, k) => h('td', {}, inline(r[k] || '')))))))));
      continue;
    }
    const item = line.match(/^(\s*)([-*+]|\d{1,9}[.)])\s+/);
    if (item) {
      const ordered = /\d/.test(item[2]);
      const items = [];
      while (i < lines.length) {
        const m = lines[i].match(/^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/);
        if (m && m[1].length <= item[1].length) { items.push([m[3]]); i++; continue; }
        if (items.length && /^\s+\S/.test(lines[i])) { items[items.length - 1].push(lines[i].trim()); i++; continue; }
        break;
      }
      out.push(h(ordered ? 'ol' : 'ul', {}, items.map((parts) => h('li', {}, inline(parts.join(' '))))));
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) para.push(lines[i++].trim());
    if (!para.length) para.push(lines[i++].trim());
    out.push(h('p', {}, inline(para.join(' '))));
  }
  return out;
}

function startsBlock(lines, i) {
  const line = lines[i];
  return /^\s*(```|~~~|#{1,6}\s|>)/.test(line) || /^(\s*)([-*+]|\d{1,9}[.)])\s+/.test(line) || isTableStart(lines, i);
}

function isTableStart(lines, i) {
  return lines[i].includes('|') && i + 1 < lines.length && /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(lines[i + 1]);
}

function cells(line) {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

/** A link target the README may have: http(s) or mailto (an in-page '#' would be a portal route). */
function safeHref(url) {
  const target = String(url).trim();
  return /^(https?:|mailto:)/i.test(target) ? target : null;
}

const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|!\[([^\]]*)\]\(([^)\s]*)[^)]*\)|\[([^\]]+)\]\(([^)\s]*)[^)]*\)|\*\*([\s\S]+?)\*\*|__([\s\S]+?)__|\*([^*\s][^*]*?)\*|(?<![\w])_([^_\s][^_]*?)_(?![\w])|<(https?:\/\/[^>\s]+)>/;

/** Inline markup of one block's text, as nodes. */
function inline(text) {
  const out = [];
  let rest = text;
  while (rest) {
    const m = rest.match(INLINE);
    if (!m) { out.push(rest); break; }
    if (m.index > 0) out.push(rest.slice(0, m.index));
    if (m[1]) out.push(h('code', {}, m[2].trim()));
    else if (m[4] !== undefined) {
      const href = safeHref(m[4]);
      out.push(href ? h('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank' }, `[image: ${m[3] || href}]`) : `[image: ${m[3]}]`);
    } else if (m[5] !== undefined) {
      const href = safeHref(m[6]);
      out.push(href ? h('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank' }, inline(m[5])) : inline(m[5]));
    } else if (m[7] !== undefined || m[8] !== undefined) out.push(h('strong', {}, inline(m[7] || m[8])));
    else if (m[9] !== undefined || m[10] !== undefined) out.push(h('em', {}, inline(m[9] || m[10])));
    else if (m[11]) out.push(h('a', { href: m[11], rel: 'noopener noreferrer nofollow', target: '_blank' }, m[11]));
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}
