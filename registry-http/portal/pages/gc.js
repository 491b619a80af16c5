// Garbage collection (system administrators): run now or as a dry run, the history, each run's log.

import { h, fill, table, pager, dialog, toast, when, size, errorBox, loading, checkbox } from '../dom.js';
import * as api from '../api.js';

const PAGE_SIZE = 10;

export async function gcPage(ctx) {
  if (!ctx.user.sysadmin_flag) return h('div', {}, h('h1', {}, 'Garbage collection'), h('p', { class: 'error' }, 'Only system administrators run garbage collection.'));
  const state = { page: 1 };
  const results = h('div', {}, loading());
  const schedule = await api.get('/system/gc/schedule').catch(() => null);
  const untagged = checkbox('Delete untagged artifacts too', 'untagged');

  async function load() {
    try {
      const { items, total } = await api.list('/system/gc', state.page, PAGE_SIZE);
      fill(results,
        table([
          { title: 'Run', num: true, cell: (r) => r.id },
          { title: 'Trigger', cell: (r) => (r.job_kind === 'MANUAL' ? 'Manual' : 'Schedule') },
          { title: 'Dry run', cell: (r) => (JSON.parse(r.job_parameters || '{}').dry_run ? 'Yes' : 'No') },
          { title: 'Status', cell: (r) => h('span', { class: `badge ${r.job_status === 'Success' ? 'ok' : r.job_status === 'Error' ? 'bad' : 'warn'}` }, r.job_status) },
          { title: 'Freed', num: true, cell: (r) => (r.report ? `${size(r.report.bytes_freed)} · ${r.report.blobs_deleted} blob(s)` : '—') },
          { title: 'Started', wide: true, cell: (r) => when(r.creation_time) },
          { title: 'Log', cell: (r) => h('button', { type: 'button', class: 'small', 'aria-label': `Log of run ${r.id}`, on: { click: () => showLog(r) } }, 'Log') },
        ], items, 'No runs yet.'),
        pager(total, state.page, PAGE_SIZE, (page) => { state.page = page; load(); }));
    } catch (error) { fill(results, errorBox(error)); }
  }

  async function run(dryRun) {
    try {
      await api.change('POST', '/system/gc/schedule', {
        schedule: { type: 'Manual' }, parameters: { dry_run: dryRun, delete_untagged: untagged.querySelector('input').checked },
      });
      toast(dryRun ? 'Dry run started' : 'Garbage collection started');
      state.page = 1;
      load();
    } catch (error) { toast(error.message, true); }
  }

  async function showLog(r) {
    const log = await api.text(`/system/gc/${r.id}/log`).catch((e) => e.message);
    await dialog(`Log of run ${r.id}`, h('pre', { class: 'mono' }, log), null, null);
  }

  load();
  return h('div', {},
    h('h1', {}, 'Garbage collection'),
    h('p', { class: 'hint' }, 'Collection runs while the registry serves: blobs no manifest references are deleted after a grace period. ',
      schedule && schedule.schedule && schedule.schedule.interval_secs ? `Scheduled every ${Math.round(schedule.schedule.interval_secs / 3600)} h.` : 'Not scheduled.'),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'primary', on: { click: () => run(false) } }, 'Run now'),
      h('button', { type: 'button', on: { click: () => run(true) } }, 'Dry run'), untagged,
      h('span', { class: 'spacer' }), h('button', { type: 'button', on: { click: load } }, 'Refresh')),
    results);
}
