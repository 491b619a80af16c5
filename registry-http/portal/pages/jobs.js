// The job service (system administrators): the shared queue by job type, the jobs with their
// status and log, and stopping them.

import { h, fill, table, pager, dialog, confirmed, when, errorBox, loading } from '../dom.js';
import * as api from '../api.js';

const PAGE_SIZE = 15;
const STATUSES = [['', 'Any status'], ['pending', 'Pending'], ['running', 'Running'], ['succeeded', 'Success'], ['failed', 'Error'], ['cancelled', 'Stopped']];

export async function jobsPage(ctx) {
  if (!ctx.user.sysadmin_flag) return h('div', {}, h('h1', {}, 'Jobs'), h('p', { class: 'error' }, 'Only system administrators see the job service.'));
  const queues = h('div', {}, loading());
  const results = h('div', {}, loading());
  const state = { page: 1 };
  const status = h('select', { 'aria-label': 'Status' }, STATUSES.map(([v, t]) => h('option', { value: v }, t)));
  const kind = h('select', { 'aria-label': 'Job type' }, h('option', { value: '' }, 'Any type'));
  for (const select of [status, kind]) select.addEventListener('change', () => { state.page = 1; loadJobs(); });

  async function loadQueues() {
    try {
      const list = await api.get('/jobservice/queues');
      fill(kind, h('option', { value: '' }, 'Any type'), list.map((q) => h('option', { value: q.job_type, selected: q.job_type === kind.value }, q.job_type)));
      fill(queues, table([
        { title: 'Job type', cell: (q) => q.job_type },
        { title: 'Pending', num: true, cell: (q) => q.count },
        { title: 'Running', num: true, cell: (q) => q.running },
        { title: 'Succeeded', num: true, cell: (q) => q.succeeded },
        { title: 'Failed', num: true, cell: (q) => (q.failed ? h('span', { class: 'badge bad' }, String(q.failed)) : '0') },
        { title: 'Oldest waiting', num: true, cell: (q) => (q.count ? `${q.latency} s` : '—') },
        { title: 'Actions', cell: (q) => (q.count + q.running > 0 ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Stop every ${q.job_type} job`,
          on: { click: () => confirmed('Stop jobs', `Stop every pending and running ${q.job_type} job?`,
            () => api.change('PUT', '/jobservice/queues', { action: 'stop', job_type: q.job_type }), `Stopped the ${q.job_type} jobs`, refresh, 'Stop') } }, 'Stop all') : '') },
      ], list, 'The queue is empty.'));
    } catch (error) { fill(queues, errorBox(error)); }
  }

  async function loadJobs() {
    try {
      const query = {};
      if (status.value) query.status = status.value;
      if (kind.value) query.job_type = kind.value;
      const { items, total } = await api.list('/jobservice/jobs', state.page, PAGE_SIZE, query);
      fill(results,
        table([
          { title: 'Job', num: true, cell: (j) => j.id },
          { title: 'Type', cell: (j) => j.job_type },
          { title: 'Status', cell: (j) => h('span', { class: `badge ${j.status === 'Success' ? 'ok' : j.status === 'Error' ? 'bad' : 'warn'}` }, j.status) },
          { title: 'Attempts', num: true, cell: (j) => `${j.attempts}/${j.max_attempts}` },
          { title: 'Created', wide: true, cell: (j) => when(j.creation_time) },
          { title: 'Updated', wide: true, cell: (j) => when(j.update_time) },
          { title: 'Actions', cell: (j) => h('div', { class: 'toolbar' },
            h('button', { type: 'button', class: 'small', 'aria-label': `Log of job ${j.id}`, on: { click: () => showLog(j) } }, 'Log'),
            ['Pending', 'Running'].includes(j.status) ? h('button', { type: 'button', class: 'small danger', 'aria-label': `Stop job ${j.id}`,
              on: { click: () => confirmed('Stop job', `Stop job ${j.id} (${j.job_type})?`, () => api.change('PUT', `/jobservice/jobs/${j.id}`, { action: 'stop' }), `Stopped job ${j.id}`, refresh, 'Stop') } }, 'Stop') : null) },
        ], items, 'No jobs match.'),
        pager(total, state.page, PAGE_SIZE, (page) => { state.page = page; loadJobs(); }));
    } catch (error) { fill(results, errorBox(error)); }
  }

  async function showLog(j) {
    const log = await api.text(`/jobservice/jobs/${j.id}/log`).catch((e) => e.message);
    await dialog(`Log of job ${j.id}`, h('pre', { class: 'mono' }, log || '(empty)'), null, null);
  }

  function refresh() { loadQueues(); loadJobs(); }

  refresh();
  return h('div', {},
    h('h1', {}, 'Jobs'),
    h('p', { class: 'hint' }, 'Garbage collection, webhook deliveries and housekeeping run as jobs of one durable queue shared by every replica.'),
    h('h2', {}, 'Queues'), queues,
    h('h2', {}, 'Jobs'),
    h('div', { class: 'toolbar', role: 'search' }, status, kind, h('span', { class: 'spacer' }), h('button', { type: 'button', on: { click: refresh } }, 'Refresh')),
    results);
}
