// taskd dashboard: lists tasks with GET /tasks, applies the changes that
// GET /events streams, starts tasks with POST /tasks and cancels them with
// POST /tasks/{id}/cancel.
//
// Rules kept here:
//   - Server strings reach the page through textContent and attributes only.
//   - The DOM holds at most view.limit rows: one page at first, one more per
//     "Show older tasks"; tasks pushed off the bottom by new ones wait in
//     view.spill and come back first when older tasks are asked for.
//   - A row is updated in place, never rebuilt: what a person types into its
//     reason input survives every update.
//   - Events are ordered and always applied; a snapshot from a response
//     (list, start, cancel) is applied only if it is not older than what the
//     row shows.
'use strict';

(() => {
  const PAGE = 100; // rows per page (the API allows up to 1000)
  const RANK = { queued: 0, running: 1, canceling: 2, succeeded: 3, failed: 3, canceled: 3 };
  const CANCELABLE = new Set(['queued', 'running']);

  const $ = (sel) => document.querySelector(sel);
  const els = {
    table: $('#tasks'),
    rows: $('#rows'),
    empty: $('#empty'),
    older: $('#older'),
    conn: $('#conn'),
    listStatus: $('#list-status'),
    start: $('#start-task'),
    startStatus: $('#start-status'),
    filter: $('#filter'),
    rowTemplate: $('#row-template'),
    cancelTemplate: $('#cancel-template'),
  };

  const view = {
    filter: '', // a state, or '' for all
    entries: new Map(), // id -> {task, row, refs}; row is null while spilled
    spill: [], // entries pushed off the bottom, newest first
    olderToken: '', // next_page_token of the last page listed; '' when none
    limit: PAGE, // most rows the table may hold
    listed: false, // the first page of the current filter is in
    generation: 0, // bumped when the list starts over; late answers are dropped
  };

  // ---- small helpers -------------------------------------------------

  function setText(el, s) {
    if (el.textContent !== s) el.textContent = s;
  }

  function setAttr(el, name, value) {
    if (value === null || value === undefined || value === '') {
      el.removeAttribute(name);
    } else if (el.getAttribute(name) !== String(value)) {
      el.setAttribute(name, value);
    }
  }

  function status(el, message, isError) {
    setText(el, message);
    el.classList.toggle('error', Boolean(isError));
  }

  function randomKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  // api sends a request and returns {ok, status, data}; data is the parsed
  // JSON body, or null. It never throws: a network error is status 0.
  async function api(method, url, body, headers) {
    const init = { method, headers: Object.assign({ Accept: 'application/json' }, headers) };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (err) {
      return { ok: false, status: 0, data: null, message: 'taskd is not reachable (' + err.message + ')' };
    }
    let data = null;
    if ((res.headers.get('Content-Type') || '').includes('json')) {
      try {
        data = await res.json();
      } catch (err) {
        data = null;
      }
    }
    let message = '';
    if (!res.ok) {
      message = (data && (data.detail || data.title)) || 'HTTP ' + res.status + ' ' + res.statusText;
    }
    return { ok: res.ok, status: res.status, data, message };
  }

  function listURL(pageSize, token) {
    const q = new URLSearchParams({ page_size: String(pageSize) });
    if (view.filter) q.set('state', view.filter);
    if (token) q.set('page_token', token);
    return '/tasks?' + q.toString();
  }

  // ---- formatting ----------------------------------------------------

  function fmtAge(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function fmtLatency(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '';
    if (ms < 1) return Math.round(ms * 1000) + ' µs';
    if (ms < 1000) return ms.toFixed(1) + ' ms';
    return (ms / 1000).toFixed(2) + ' s';
  }

  function fmtBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }

  function summary(t) {
    const p = t.params || {};
    let s;
    if (t.kind === 'longrunning' && p.iterations !== undefined) {
      s = 'longrunning · ' + p.iterations + ' × ' + (p.interval !== undefined ? p.interval : '1s');
    } else if (t.kind === 'download' && p.url) {
      s = 'download · ' + p.url;
    } else {
      const js = JSON.stringify(p);
      s = (t.kind || '?') + (js && js !== '{}' ? ' · ' + (js.length > 80 ? js.slice(0, 79) + '…' : js) : '');
    }
    if (t.request_scoped) s += ' · request-scoped';
    if (t.attempt > 1) s += ' · attempt ' + t.attempt;
    if (t.timeout) s += ' · timeout ' + t.timeout;
    return s;
  }

  function progressText(t) {
    const p = t.progress;
    if (!p) return '';
    const bytes = t.kind === 'download';
    const f = (n) => (bytes ? fmtBytes(n) : String(n));
    if (p.total > 0) return f(p.done || 0) + ' / ' + f(p.total);
    if (p.done) return f(p.done);
    return '';
  }

  function reasonText(t) {
    const c = t.cancel;
    if (!c) return '';
    const parts = [];
    if (c.reason && !(t.cause || '').includes(c.reason)) parts.push('reason: ' + c.reason);
    const who = [c.via, c.request_id].filter(Boolean).join(', request ');
    if (who) parts.push('via ' + who);
    return parts.join(' · ');
  }

  // notOlder reports whether snapshot a may replace snapshot b of the same
  // task: a later attempt, a later state, or more progress.
  function notOlder(a, b) {
    const ka = [a.attempt || 1, RANK[a.state] ?? 0, (a.progress && a.progress.done) || 0];
    const kb = [b.attempt || 1, RANK[b.state] ?? 0, (b.progress && b.progress.done) || 0];
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] !== kb[i]) return ka[i] > kb[i];
    }
    return true;
  }

  function matches(t) {
    return !view.filter || t.state === view.filter;
  }

  // ---- rows ------------------------------------------------------------

  function buildRow(e) {
    const row = els.rowTemplate.content.firstElementChild.cloneNode(true);
    row.dataset.taskId = e.task.id;
    const f = (name) => row.querySelector('[data-field="' + name + '"]');
    e.row = row;
    e.refs = {
      id: f('id'),
      kind: f('kind'),
      state: f('state'),
      progress: row.querySelector('progress'),
      progressText: f('progress'),
      node: f('node'),
      age: f('age'),
      cause: f('cause'),
      reason: f('reason'),
      latency: f('stop-latency'),
      actions: f('actions'),
      form: null,
      note: null,
    };
    setText(e.refs.id, e.task.id);
    renderRow(e);
    return row;
  }

  function renderRow(e) {
    const t = e.task;
    const r = e.refs;
    setText(r.kind, summary(t));
    setText(r.state, t.state || '');
    setAttr(r.state, 'data-state', t.state);
    setAttr(e.row, 'data-state', t.state);
    const times = [
      t.created_at && 'created ' + t.created_at,
      t.started_at && 'started ' + t.started_at,
      t.finished_at && 'finished ' + t.finished_at,
      t.result && 'result: ' + t.result,
    ].filter(Boolean);
    setAttr(r.state, 'title', times.join('\n'));

    const p = t.progress;
    const bar = r.progress;
    if (p && p.total > 0) {
      setAttr(bar, 'max', p.total);
      setAttr(bar, 'value', Math.min(p.done || 0, p.total));
    } else if (t.state === 'succeeded') {
      setAttr(bar, 'max', 1);
      setAttr(bar, 'value', 1);
    } else if (t.state === 'running') {
      bar.removeAttribute('value'); // indeterminate: no total known
    } else {
      setAttr(bar, 'max', 1);
      setAttr(bar, 'value', 0);
    }
    setAttr(bar, 'aria-label', 'Progress of ' + t.id);
    setAttr(bar, 'title', (p && p.message) || '');
    setText(r.progressText, progressText(t));

    setText(r.node, t.node || '');
    setAttr(r.age, 'datetime', t.created_at);
    setAttr(r.age, 'title', t.created_at);
    renderAge(e, Date.now());
    setText(r.cause, t.cause || '');
    setText(r.reason, reasonText(t));
    setText(r.latency, fmtLatency(t.stop_latency_ms));
    renderActions(e);
  }

  function renderAge(e, now) {
    const created = Date.parse(e.task.created_at);
    setText(e.refs.age, isNaN(created) ? '' : fmtAge(now - created));
  }

  // renderActions keeps the cancel form while the task can be canceled, and
  // keeps the same form element so its input keeps what was typed.
  function renderActions(e) {
    const r = e.refs;
    const t = e.task;
    if (CANCELABLE.has(t.state)) {
      if (!r.form) {
        const form = els.cancelTemplate.content.firstElementChild.cloneNode(true);
        form.elements.reason.setAttribute('aria-label', 'Reason for canceling ' + t.id);
        form.querySelector('button').setAttribute('aria-label', 'Cancel ' + t.id);
        r.form = form;
        r.actions.prepend(form);
      }
    } else if (r.form) {
      // Keep the keyboard's place: focus moves to the row's state.
      const focused = r.form.contains(document.activeElement);
      r.form.remove();
      r.form = null;
      if (focused) {
        r.state.tabIndex = -1;
        r.state.focus();
      }
    }
    const stopping = t.state === 'canceling' ? 'stopping…' : '';
    if (stopping && !r.note) {
      r.note = document.createElement('span');
      r.note.className = 'progress-text';
      r.actions.append(r.note);
    }
    if (r.note) setText(r.note, stopping);
  }

  function rowError(e, message) {
    const r = e.refs;
    if (!r) return; // the row left the table meanwhile
    let el = r.actions.querySelector('.row-error');
    if (!message) {
      if (el) el.remove();
      return;
    }
    if (!el) {
      el = document.createElement('span');
      el.className = 'row-error';
      el.setAttribute('role', 'alert');
      r.actions.append(el);
    }
    setText(el, message);
  }

  function rowCount() {
    return els.rows.childElementCount;
  }

  function lastRowID() {
    const last = els.rows.lastElementChild;
    return last ? last.dataset.taskId : '';
  }

  function moreOlder() {
    return view.spill.length > 0 || view.olderToken !== '';
  }

  // insert puts a task that is new to the view where it belongs: a row in
  // id order (newest first), the spill when it sorts below a full table, or
  // nowhere when it is older than everything listed and more pages exist
  // (it comes with those pages).
  function insert(t) {
    const lastListed = view.spill.length ? view.spill[view.spill.length - 1].task.id : lastRowID();
    if (view.olderToken !== '' && lastListed !== '' && t.id < lastListed) return;
    const e = { task: t, row: null, refs: null };
    view.entries.set(t.id, e);
    if (rowCount() >= view.limit && t.id < lastRowID()) {
      let i = 0;
      while (i < view.spill.length && view.spill[i].task.id > t.id) i++;
      view.spill.splice(i, 0, e);
      return;
    }
    const row = buildRow(e);
    let before = els.rows.firstElementChild;
    while (before && before.dataset.taskId > t.id) before = before.nextElementSibling;
    els.rows.insertBefore(row, before);
    trim();
  }

  // appendListed adds a page of listed tasks (newest first, all older than
  // what is listed already) below the rows, or to the spill once the table
  // is full.
  function appendListed(tasks) {
    for (const t of tasks || []) {
      if (!t || typeof t.id !== 'string') continue;
      if (view.entries.has(t.id)) {
        upsert(t, false);
        continue;
      }
      if (!matches(t)) continue;
      const e = { task: t, row: null, refs: null };
      view.entries.set(t.id, e);
      if (rowCount() < view.limit && view.spill.length === 0) {
        els.rows.append(buildRow(e));
      } else {
        view.spill.push(e);
      }
    }
  }

  // trim moves rows past the limit to the front of the spill.
  function trim() {
    while (rowCount() > view.limit) {
      const row = els.rows.lastElementChild;
      const e = view.entries.get(row.dataset.taskId);
      row.remove();
      e.row = null;
      e.refs = null;
      view.spill.unshift(e);
    }
  }

  // remove takes a task out of the view; a row from the spill takes the
  // place of a removed one.
  function remove(e) {
    view.entries.delete(e.task.id);
    if (e.row) {
      e.row.remove();
      if (view.spill.length > 0 && rowCount() < view.limit) els.rows.append(buildRow(view.spill.shift()));
    } else {
      const i = view.spill.indexOf(e);
      if (i >= 0) view.spill.splice(i, 1);
    }
  }

  // upsert applies one snapshot of a task. fromStream: it came from
  // /events, in order; otherwise it is applied only if not older.
  function upsert(t, fromStream) {
    if (!t || typeof t.id !== 'string') return;
    const e = view.entries.get(t.id);
    if (!e) {
      if (matches(t)) insert(t);
      return;
    }
    if (!fromStream && !notOlder(t, e.task)) return;
    e.task = t;
    if (!matches(t)) {
      remove(e);
    } else if (e.row) {
      renderRow(e);
    }
  }

  function refreshChrome() {
    els.empty.hidden = !view.listed || rowCount() > 0;
    $('#empty-all').hidden = view.filter !== '';
    $('#empty-filter').hidden = view.filter === '';
    setText($('#empty-state'), view.filter);
    els.older.hidden = !moreOlder();
  }

  // ---- live events -------------------------------------------------------

  const pending = new Map(); // id -> latest streamed snapshot, not yet applied
  let flushScheduled = false;

  function queue(t) {
    if (!t || typeof t.id !== 'string') return;
    pending.delete(t.id); // keep arrival order of the latest snapshots
    pending.set(t.id, t);
    if (view.listed) schedule();
  }

  function schedule() {
    if (flushScheduled) return;
    flushScheduled = true;
    if (document.hidden) {
      setTimeout(flush, 500);
    } else {
      requestAnimationFrame(flush);
    }
  }

  function flush() {
    flushScheduled = false;
    if (!view.listed) return;
    for (const t of pending.values()) upsert(t, true);
    pending.clear();
    refreshChrome();
  }

  let source = null;
  let everOpen = false;
  let interrupted = false;
  let retryDelay = 1000;

  function setConn(state, text) {
    els.conn.dataset.conn = state;
    setText(els.conn, text);
  }

  function connect() {
    source = new EventSource('/events');
    source.addEventListener('open', () => {
      setConn('live', 'Live');
      retryDelay = 1000;
      if (!view.listed && !loading) {
        loadFirstPage();
      } else if (interrupted) {
        resync();
      }
      everOpen = true;
      interrupted = false;
    });
    source.addEventListener('task', (ev) => {
      let t;
      try {
        t = JSON.parse(ev.data);
      } catch (err) {
        return;
      }
      queue(t);
    });
    source.addEventListener('error', () => {
      interrupted = everOpen;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an answer that is not an event stream): start
        // over with a new stream after a pause, then list again.
        source.close();
        interrupted = true;
        setConn('down', 'Disconnected, retrying in ' + Math.round(retryDelay / 1000) + 's');
        setTimeout(() => {
          if (!paused) connect();
        }, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
        if (!view.listed && !loading) loadFirstPage();
      } else {
        setConn('connecting', 'Reconnecting…');
      }
    });
  }

  // A tab hidden for a while gives its stream back, and takes it again
  // (listing the shown rows anew) when it is shown: a browser opens at most
  // six HTTP/1.1 connections to one server, and every open page holds one.
  const PAUSE_AFTER_MS = 10000;
  let pauseTimer = 0;
  let paused = false;

  function onVisibility() {
    if (document.hidden) {
      clearTimeout(pauseTimer);
      pauseTimer = setTimeout(() => {
        if (!document.hidden || paused) return;
        paused = true;
        if (source) source.close();
        setConn('down', 'Paused while the tab is hidden');
      }, PAUSE_AFTER_MS);
      return;
    }
    clearTimeout(pauseTimer);
    if (paused) {
      paused = false;
      interrupted = true;
      setConn('connecting', 'Reconnecting…');
      connect();
    }
    if (pending.size) schedule();
  }

  // ---- listing -----------------------------------------------------------

  let loading = false;

  // loadFirstPage lists the first page of the current filter. Events that
  // arrive meanwhile wait in pending and are applied after it.
  async function loadFirstPage() {
    const gen = ++view.generation;
    loading = true;
    els.table.setAttribute('aria-busy', 'true');
    status(els.listStatus, 'Loading tasks…');
    const res = await api('GET', listURL(PAGE));
    if (gen !== view.generation) return;
    loading = false;
    if (!res.ok) {
      status(els.listStatus, 'Could not list tasks: ' + res.message + '. Retrying…', true);
      setTimeout(() => {
        if (gen === view.generation && !view.listed && !loading) loadFirstPage();
      }, 2000);
      return;
    }
    status(els.listStatus, '');
    const data = res.data || {};
    view.listed = true;
    appendListed(data.tasks);
    view.olderToken = data.next_page_token || '';
    flush();
    els.table.setAttribute('aria-busy', 'false');
    if (!performance.getEntriesByName('taskd:first-rows').length) performance.mark('taskd:first-rows');
  }

  // resync lists the rows shown again after the stream was interrupted, in
  // case the server could not resume it; newer snapshots win.
  async function resync() {
    const gen = view.generation;
    const res = await api('GET', listURL(Math.min(Math.max(rowCount(), 1), 1000)));
    if (gen !== view.generation || !res.ok || !res.data) return;
    for (const t of res.data.tasks || []) upsert(t, false);
    refreshChrome();
  }

  async function showOlder() {
    view.limit += PAGE;
    while (rowCount() < view.limit && view.spill.length > 0) {
      const e = view.spill.shift();
      els.rows.append(buildRow(e));
    }
    if (rowCount() < view.limit && view.olderToken !== '') {
      const gen = view.generation;
      els.older.disabled = true;
      const res = await api('GET', listURL(PAGE, view.olderToken));
      els.older.disabled = false;
      if (gen !== view.generation) return;
      if (!res.ok) {
        view.limit -= PAGE;
        status(els.listStatus, 'Could not list older tasks: ' + res.message, true);
        return;
      }
      const data = res.data || {};
      appendListed(data.tasks);
      view.olderToken = data.next_page_token || '';
    }
    refreshChrome();
  }

  function setFilter(state) {
    view.filter = state;
    const url = new URL(location.href);
    if (state) {
      url.searchParams.set('state', state);
    } else {
      url.searchParams.delete('state');
    }
    history.replaceState(null, '', url);
    view.entries.clear();
    view.spill = [];
    view.olderToken = '';
    view.limit = PAGE;
    view.listed = false;
    els.rows.replaceChildren();
    refreshChrome();
    loadFirstPage();
  }

  // ---- actions -------------------------------------------------------------

  async function startTask(ev) {
    ev.preventDefault();
    const form = els.start;
    const fd = new FormData(form);
    const kind = fd.get('kind');
    const params = {};
    if (kind === 'longrunning') {
      params.iterations = Number(fd.get('iterations'));
      params.interval = String(fd.get('interval')).trim();
    } else if (kind === 'download') {
      params.url = String(fd.get('url')).trim();
      const sum = String(fd.get('sha256') || '').trim();
      if (sum) params.sha256 = sum.toLowerCase();
    }
    const body = { kind, params };
    const timeout = String(fd.get('timeout') || '').trim();
    if (timeout) body.timeout = timeout;

    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    status(els.startStatus, 'Starting…');
    const res = await api('POST', '/tasks', body, { 'Idempotency-Key': randomKey() });
    button.disabled = false;
    if (!res.ok || !res.data) {
      status(els.startStatus, 'Not started: ' + (res.message || 'no task in the answer'), true);
      return;
    }
    const t = res.data;
    upsert(t, false);
    refreshChrome();
    const e = view.entries.get(t.id);
    if (e && e.row) {
      e.row.classList.add('fresh');
      status(els.startStatus, 'Started ' + t.id + '.');
    } else {
      status(els.startStatus, 'Started ' + t.id + ' (hidden by the filter).');
    }
  }

  async function cancelTask(ev) {
    const form = ev.target.closest('form.cancel');
    if (!form) return;
    ev.preventDefault();
    const row = form.closest('[data-task-id]');
    const e = row && view.entries.get(row.dataset.taskId);
    if (!e) return;
    const reason = form.elements.reason.value.trim();
    const button = form.querySelector('button');
    button.disabled = true;
    const url = '/tasks/' + encodeURIComponent(e.task.id) + '/cancel';
    const res = await api('POST', url, reason ? { reason } : undefined);
    button.disabled = false;
    if (res.data && typeof res.data.id === 'string' && (res.ok || res.status === 409)) {
      upsert(res.data, false);
    }
    if (res.ok) {
      rowError(e, '');
      status(els.listStatus, 'Cancel requested for ' + e.task.id + '.');
    } else if (res.status === 409) {
      rowError(e, 'Already finished.');
    } else {
      rowError(e, 'Not canceled: ' + res.message);
    }
    refreshChrome();
  }

  function tickAges() {
    if (document.hidden) return;
    const now = Date.now();
    for (const e of view.entries.values()) {
      if (e.row) renderAge(e, now);
    }
  }

  function showKindParams() {
    const kind = els.start.elements.kind.value;
    for (const fs of els.start.querySelectorAll('.kind-params')) {
      const on = fs.dataset.kind === kind;
      fs.hidden = !on;
      fs.disabled = !on;
    }
  }

  // ---- start -----------------------------------------------------------------

  els.start.addEventListener('submit', startTask);
  els.start.elements.kind.addEventListener('change', showKindParams);
  els.rows.addEventListener('submit', cancelTask);
  els.older.addEventListener('click', showOlder);
  els.filter.addEventListener('change', (ev) => {
    if (ev.target.name === 'state') setFilter(ev.target.value);
  });
  document.addEventListener('visibilitychange', onVisibility);
  setInterval(tickAges, 1000);

  const initial = new URLSearchParams(location.search).get('state') || '';
  if (initial && RANK[initial] !== undefined) {
    view.filter = initial;
    const radio = els.filter.querySelector('input[value="' + initial + '"]');
    if (radio) radio.checked = true;
  }
  showKindParams();
  connect();
  // List even if the stream does not open soon (it is opened first so that
  // no change between the list and the stream's start is missed).
  setTimeout(() => {
    if (!view.listed && !loading) loadFirstPage();
  }, 1500);
})();
