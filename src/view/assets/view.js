// rmf-dash live view: the site through the public API only (socket.io rooms of COMPAT.md and the
// REST routes), so it is also a reference client for dashboard authors.
//
// - Every socket.io event only records the room's latest value (streams are queued); the page
//   applies what arrived once per animation frame, then redraws what changed. A 1,000-robot site
//   sends hundreds of events a second; the page does one pass of work per frame whatever their
//   number.
// - Subscriptions are kept in `rooms` and sent again after every (re)connect: the server forgets
//   a socket's rooms when it disconnects.
// - With authentication on, the token comes from the URL fragment (#token=...) or the sign-in
//   form and is kept in sessionStorage; it goes to socket.io as `auth: {token}` and to REST as a
//   Bearer header.
'use strict';
(() => {
  // The page's <base> is `{prefix}/` (set by the server).
  const PREFIX = new URL('.', document.baseURI).pathname.replace(/\/$/, '');
  const TOKEN_KEY = 'rmf-dash-token';
  const WINDOW_MS = 15 * 60 * 1000;
  const MAX_ALERTS = 200;
  const MAX_TASK_ROWS = 200;
  const FLEET_POLL_MS = 10000;
  // `?coalesce=0`: apply and redraw on every event, no frame coalescing and no redraw rates (the
  // baseline the coalescing is measured against; see tests/node/view_measure.mjs).
  const COALESCE = new URLSearchParams(location.search).get('coalesce') !== '0';

  const DOOR_MODES = ['closed', 'moving', 'open', 'offline', 'unknown'];
  const LIFT_DOORS = ['closed', 'moving', 'open'];
  const LIFT_MOTION = ['stopped', 'up', 'down', 'unknown'];
  const LIFT_MODES = ['unknown', 'human', 'agv', 'fire', 'offline', 'emergency'];
  const COLORS = {
    idle: '#8a94a6', working: '#2563eb', charging: '#16a34a', error: '#dc2626',
    offline: '#111827', open: '#16a34a', moving: '#f59e0b', closed: '#dc2626', dead: '#9ca3af',
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const setText = (e, text) => { if (e.textContent !== text) e.textContent = text; };
  const setAttr = (e, name, value) => {
    const v = String(value);
    if (e.getAttribute(name) !== v) e.setAttribute(name, v);
  };
  const fmtTime = (ms) => (ms ? new Date(ms).toISOString().slice(11, 19) : '');
  const fmtDuration = (ms) => (ms == null ? '' : `${Math.round(ms / 1000)} s`);

  // ---- state ------------------------------------------------------------------------------------

  let token = null;
  let authEnabled = true;
  let socket = null;
  let dataTime = 0; // latest logical time seen (ms)
  let map = null; // the building map
  let level = null; // the level shown
  const doors = new Map(); // name -> {name, level, v1, v2, mode, health, message, heldOpen, row}
  const lifts = new Map(); // name -> {name, def, state, health, row}
  const robots = new Map(); // "fleet/robot" -> {...}
  const fleets = new Map(); // name -> {queue, t1m, t15m, minutes: Map, series: [], robots: Set}
  const alerts = new Map(); // id -> {alert, response, li}
  const rooms = new Map(); // room -> handler(value, meta)
  // The sum over fleets of their sliding 15-minute counts, as it changed: [[t, completed, failed]].
  const site = { completed: 0, failed: 0, series: [] };
  // Appends to a time series, dropping what left the 15-minute window (one point before it kept
  // as the value at its start).
  function push(series, point) {
    series.push(point);
    while (series.length > 2 && series[1][0] < point[0] - WINDOW_MS) series.shift();
  }

  // Events of the current frame: state rooms keep their latest value only.
  let pending = new Map();
  let pendingStream = [];
  let scheduled = false;
  const dirty = { map: true, doors: new Set(), lifts: new Set(), robots: new Set(),
    tasks: false, alerts: false, charts: false, counts: true, levels: false };

  // What the page measures about itself (read by tests and `window.rmfView.stats()`).
  const SAMPLES = 2000;
  const metrics = { frames: 0, events: 0, frameMs: [], delayMs: [], intervalMs: [], lastFrame: 0, parts: {} };
  const sample = (arr, v) => { arr.push(v); if (arr.length > SAMPLES) arr.shift(); };

  // ---- transport ----------------------------------------------------------------------------

  const roomArg = (room) => room.split('/').map(encodeURIComponent).join('/');

  function subscribe(room, handler) {
    if (rooms.has(room)) return;
    rooms.set(room, handler);
    if (socket && socket.connected) socket.emit('subscribe', { room: roomArg(room) });
  }

  function onEvent(room, value, meta) {
    if (!rooms.has(room)) return;
    metrics.events++;
    if (room === '/alerts/requests' || room === '/alerts/responses') {
      if (pendingStream.length < 10000) pendingStream.push([room, value, meta]);
    } else {
      pending.set(room, [value, meta]);
    }
    if (!COALESCE) {
      frame(performance.now());
      return;
    }
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(frame);
    }
  }

  async function rest(path, init = {}) {
    const headers = Object.assign({}, init.headers || {});
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(PREFIX + path, Object.assign({}, init, { headers }));
    if (response.status === 401 && authEnabled) {
      showLogin('The server refused the token; sign in again.');
    }
    return response;
  }

  function setConnection(state, text) {
    const c = $('connection');
    setAttr(c, 'data-state', state);
    setText(c, text || state);
  }

  function connect() {
    if (socket) socket.close();
    setConnection('connecting');
    socket = io({
      path: `${PREFIX}/socket.io`,
      auth: token ? { token } : {},
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
    });
    socket.on('connect', () => {
      setConnection('connected');
      // The server keeps no subscription across connections: send them all again.
      for (const room of rooms.keys()) socket.emit('subscribe', { room: roomArg(room) });
      loadSnapshot();
    });
    socket.on('disconnect', (reason) => setConnection('disconnected', `disconnected (${reason})`));
    socket.on('connect_error', (err) => {
      if (!socket.active) {
        // Refused by the server (the token): socket.io does not retry.
        setConnection('refused', 'refused');
        if (authEnabled) showLogin(`Connection refused: ${err.message}`);
      } else {
        setConnection('disconnected', 'reconnecting');
      }
    });
    socket.on('subscribe_error', (e) => console.warn('subscribe_error', e));
    socket.onAny((room, value, meta) => onEvent(room, value, meta));
    window.rmfView.socket = socket;
  }

  // What the rooms do not replay: alerts raised before the page subscribed, and the fleets.
  async function loadSnapshot() {
    try {
      const r = await rest('/alerts/unresponded_requests');
      if (r.ok) {
        for (const a of await r.json()) addAlert(a);
        dirty.alerts = true;
        schedule();
      }
    } catch (e) {
      console.warn('alerts', e);
    }
    await pollFleets();
  }

  async function pollFleets() {
    try {
      const r = await rest('/fleets');
      if (!r.ok) return;
      for (const f of await r.json()) if (f && typeof f.name === 'string') addFleet(f.name);
      const e = await rest('/view/entities');
      if (!e.ok) return;
      const known = await e.json();
      for (const name of known.doors || []) if (typeof name === 'string') addDoor(name);
      for (const name of known.lifts || []) if (typeof name === 'string') addLift(name);
      schedule();
    } catch (e) {
      console.warn('fleets', e);
    }
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(frame);
    }
  }

  // ---- model updates ----------------------------------------------------------------------------

  function addFleet(name) {
    if (fleets.has(name)) return;
    fleets.set(name, { name, queue: [], t1m: null, t15m: null, minutes: new Map(), series: [] });
    const opt = el('option', '', name);
    opt.value = name;
    $('fleet-select').append(opt);
    subscribe(`/fleets/${name}/state`, (v) => fleetState(name, v));
    subscribe(`/fleets/${name}/task_queue`, (v) => {
      fleets.get(name).queue = (v && Array.isArray(v.tasks)) ? v.tasks : [];
      dirty.tasks = true;
    });
    subscribe(`/fleets/${name}/throughput_1m`, (v) => {
      const f = fleets.get(name);
      f.t1m = v;
      if (v && typeof v.window_start === 'number') {
        f.minutes.set(v.window_start, { completed: v.completed | 0, failed: v.failed | 0 });
      }
      dirty.charts = true;
    });
    subscribe(`/fleets/${name}/throughput_15m`, (v, meta) => {
      const f = fleets.get(name);
      f.t15m = v;
      dirty.charts = true;
      // The room also changes with the robots' statuses: the series keep count changes only.
      const c = v ? v.completed | 0 : 0;
      const x = v ? v.failed | 0 : 0;
      const prev = f.series.length ? f.series[f.series.length - 1] : [0, 0, 0];
      if (f.series.length && prev[1] === c && prev[2] === x) return;
      const t = meta && typeof meta.t === 'number' ? meta.t : dataTime;
      push(f.series, [t, c, x]);
      site.completed += c - prev[1];
      site.failed += x - prev[2];
      push(site.series, [t, site.completed, site.failed]);
    });
    dirty.counts = true;
  }

  function robotOf(fleet, name) {
    const key = `${fleet}/${name}`;
    let r = robots.get(key);
    if (!r) {
      r = { key, fleet, name, status: 'uninitialized', level: '', x: 0, y: 0, yaw: 0, battery: null,
        taskId: '', health: 'Healthy', healthMessage: '', stuck: false, batteryLow: false, row: null };
      robots.set(key, r);
      subscribe(`/robots/${fleet}/${name}/health`, (v) => {
        r.health = v ? v.health_status : 'Healthy';
        r.healthMessage = (v && v.health_message) || '';
        touchRobot(r);
      });
      subscribe(`/robots/${fleet}/${name}/stuck`, (v) => { r.stuck = !!v; touchRobot(r); });
      subscribe(`/robots/${fleet}/${name}/battery_low`, (v) => { r.batteryLow = !!v; touchRobot(r); });
      dirty.counts = true;
    }
    return r;
  }

  function touchRobot(r) {
    dirty.robots.add(r.key);
    if (r.level === level) dirty.map = true;
  }

  function fleetState(fleet, v) {
    if (!v || typeof v.robots !== 'object' || v.robots === null) return;
    for (const [name, s] of Object.entries(v.robots)) {
      if (!s) continue;
      const r = robotOf(fleet, name);
      const before = r.level;
      r.status = s.status || r.status;
      r.battery = typeof s.battery === 'number' ? s.battery : r.battery;
      r.taskId = s.task_id || '';
      if (s.location) {
        r.level = s.location.map || r.level;
        r.x = +s.location.x || 0;
        r.y = +s.location.y || 0;
        r.yaw = +s.location.yaw || 0;
      }
      dirty.robots.add(r.key);
      if (r.level === level || before === level) dirty.map = true;
    }
  }

  function setMap(v) {
    if (!v || !Array.isArray(v.levels)) return;
    map = v;
    setText($('site-name'), v.name || '');
    for (const lv of v.levels) {
      for (const d of lv.doors || []) {
        Object.assign(addDoor(d.name), { level: lv.name, geom: d });
        dirty.doors.add(d.name);
      }
    }
    for (const l of v.lifts || []) {
      addLift(l.name).def = l;
      dirty.lifts.add(l.name);
    }
    staticLayer = null;
    images.clear();
    dirty.levels = true;
    dirty.map = true;
    dirty.counts = true;
  }

  // Doors and lifts come from the building map and from the states the server has (a site
  // whose map has not been published yet still lists them, without a place on the map).
  function addDoor(name) {
    if (!doors.has(name)) {
      doors.set(name, { name, level: '', mode: null, health: '', message: '', heldOpen: false, row: null });
      subscribe(`/doors/${name}/state`, (s) => {
        doors.get(name).mode = s && s.current_mode ? s.current_mode.value : null;
        touchDoor(name);
      });
      subscribe(`/doors/${name}/health`, (s) => {
        const door = doors.get(name);
        door.health = s ? s.health_status : '';
        door.message = (s && s.health_message) || '';
        touchDoor(name);
      });
      subscribe(`/doors/${name}/held_open`, (s) => {
        doors.get(name).heldOpen = !!s;
        touchDoor(name);
      });
      dirty.doors.add(name);
      dirty.counts = true;
    }
    return doors.get(name);
  }

  function addLift(name) {
    if (!lifts.has(name)) {
      lifts.set(name, { name, def: null, state: null, health: '', message: '', row: null });
      subscribe(`/lifts/${name}/state`, (s) => { lifts.get(name).state = s; touchLift(name); });
      subscribe(`/lifts/${name}/health`, (s) => {
        const lift = lifts.get(name);
        lift.health = s ? s.health_status : '';
        lift.message = (s && s.health_message) || '';
        touchLift(name);
      });
      dirty.lifts.add(name);
      dirty.counts = true;
    }
    return lifts.get(name);
  }

  function touchDoor(name) { dirty.doors.add(name); dirty.map = true; }
  function touchLift(name) { dirty.lifts.add(name); dirty.map = true; }

  function addAlert(a) {
    if (!a || typeof a.id !== 'string') return;
    const known = alerts.get(a.id);
    if (known) { known.alert = a; return; }
    alerts.set(a.id, { alert: a, response: null, error: '', li: null });
    while (alerts.size > MAX_ALERTS) {
      // Forget the oldest answered alert, or the oldest one.
      let drop = null;
      for (const [id, x] of alerts) { if (x.response) { drop = id; break; } }
      if (drop === null) drop = alerts.keys().next().value;
      const x = alerts.get(drop);
      if (x.li) x.li.remove();
      alerts.delete(drop);
    }
    dirty.alerts = true;
  }

  function answered(id, response) {
    const x = alerts.get(id);
    if (!x) return;
    x.response = response;
    x.error = '';
    dirty.alerts = true;
  }

  async function respond(id, response, button) {
    button.disabled = true;
    const x = alerts.get(id);
    try {
      const r = await rest(`/alerts/request/${encodeURIComponent(id)}/respond?response=${encodeURIComponent(response)}`,
        { method: 'POST' });
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        answered(id, body.response || response);
      } else if (r.status === 409) {
        answered(id, x && x.response ? x.response : 'answered elsewhere');
      } else if (x) {
        x.error = `${r.status}: ${typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail)}`;
        dirty.alerts = true;
      }
    } catch (e) {
      if (x) { x.error = String(e); dirty.alerts = true; }
    }
    button.disabled = false;
    schedule();
  }

  // ---- the frame ---------------------------------------------------------------------------------

  function frame(now) {
    scheduled = false;
    const t0 = performance.now();
    if (COALESCE && metrics.lastFrame) sample(metrics.intervalMs, now - metrics.lastFrame);
    metrics.lastFrame = now;
    const tApply = performance.now();
    const batch = pending;
    const streams = pendingStream;
    pending = new Map();
    pendingStream = [];
    let oldest = Infinity;
    for (const [room, [value, meta]] of batch) {
      if (meta) {
        if (typeof meta.t === 'number' && meta.t > dataTime) dataTime = meta.t;
        if (typeof meta.sent_ms === 'number' && meta.sent_ms < oldest) oldest = meta.sent_ms;
      }
      try {
        rooms.get(room)(value, meta);
      } catch (e) {
        console.warn(room, e);
      }
    }
    for (const [room, value, meta] of streams) {
      if (meta && typeof meta.t === 'number' && meta.t > dataTime) dataTime = meta.t;
      if (room === '/alerts/requests') addAlert(value);
      else if (value && typeof value.id === 'string') answered(value.id, value.response);
    }
    const applied = performance.now();
    const part = metrics.parts.apply || (metrics.parts.apply = { total: 0, max: 0, n: 0 });
    part.total += applied - tApply;
    part.n++;
    if (applied - tApply > part.max) part.max = applied - tApply;
    render();
    const done = performance.now();
    metrics.frames++;
    sample(metrics.frameMs, done - t0);
    // From the hub's send to the end of the frame that applied it (the browser paints next).
    if (oldest !== Infinity) sample(metrics.delayMs, Date.now() - oldest);
  }

  // Time spent per part of the page (ms, total and worst), for `stats()`.
  function timed(name, f) {
    const t = performance.now();
    f();
    const ms = performance.now() - t;
    const p = metrics.parts[name] || (metrics.parts[name] = { total: 0, max: 0, n: 0 });
    p.total += ms;
    p.n++;
    if (ms > p.max) p.max = ms;
  }

  // The least time between two redraws of a part (ms): what arrived meanwhile waits, coalesced,
  // for the part's next turn. Data comes at about 1 Hz per entity; these rates keep the page
  // current to the eye while a large site's hundreds of events a second cost a few redraws.
  const EVERY = { doors: 100, lifts: 100, robots: 250, tasks: 500, alerts: 0, charts: 1000, map: 100 };
  const lastRun = {};
  let wakeTimer = null;
  function due(name) {
    if (!COALESCE) return true;
    const now = performance.now();
    const wait = EVERY[name] - (now - (lastRun[name] || -Infinity));
    if (wait <= 0) {
      lastRun[name] = now;
      return true;
    }
    if (!wakeTimer) wakeTimer = setTimeout(() => { wakeTimer = null; schedule(); }, wait);
    return false;
  }

  function render() {
    if (dirty.levels) timed('levels', renderLevels);
    if (dirty.doors.size && due('doors')) timed('doors', renderDoors);
    if (dirty.lifts.size && due('lifts')) timed('lifts', renderLifts);
    if (dirty.robots.size && due('robots')) timed('robots', renderRobots);
    if (dirty.tasks && due('tasks')) timed('tasks', renderTasks);
    if (dirty.alerts && due('alerts')) timed('alerts', renderAlerts);
    if (dirty.charts && due('charts')) timed('charts', renderCharts);
    if (dirty.map && due('map')) timed('map', drawMap);
    renderCounts();
    setText($('data-time'), dataTime ? new Date(dataTime).toISOString().replace('T', ' ').slice(0, 19) : '');
  }

  function renderCounts() {
    let queued = 0;
    for (const f of fleets.values()) queued += f.queue.length;
    let open = 0;
    for (const a of alerts.values()) if (!a.response && (a.alert.responses_available || []).length) open++;
    for (const [id, n] of [['robot-count', robots.size], ['door-count', doors.size],
      ['lift-count', lifts.size], ['task-count', queued], ['alert-count', open]]) {
      const e = $(id);
      setAttr(e, 'data-count', n);
      setText(e, String(n));
    }
  }

  function renderLevels() {
    dirty.levels = false;
    const select = $('level-select');
    select.replaceChildren();
    for (const lv of map ? map.levels : []) {
      const o = el('option', '', lv.name);
      o.value = lv.name;
      select.append(o);
    }
    if (!map || !map.levels.some((l) => l.name === level)) level = map && map.levels[0] ? map.levels[0].name : null;
    if (level) select.value = level;
  }

  // Keeps a table's rows sorted by key (rows are created once, then only their cells change).
  function rowFor(tbody, item, key, id, cells) {
    if (!item.row) {
      item.row = el('tr');
      setAttr(item.row, key, id);
      for (const c of cells) item.row.append(el('td', c));
      const after = [...tbody.children].find((r) => r.getAttribute(key) > item.row.getAttribute(key));
      tbody.insertBefore(item.row, after || null);
    }
    return item.row;
  }

  function renderDoors() {
    const tbody = $('doors').tBodies[0];
    for (const name of dirty.doors) {
      const d = doors.get(name);
      if (!d) continue;
      const row = rowFor(tbody, d, 'data-door', d.name, ['id', 'level', 'state', 'health']);
      const state = d.mode == null ? 'unknown' : (DOOR_MODES[d.mode] || `mode ${d.mode}`);
      setAttr(row, 'data-state', state);
      setAttr(row, 'data-health', d.health || 'unknown');
      setAttr(row, 'data-held-open', d.heldOpen);
      setText(row.cells[0], d.name);
      setText(row.cells[1], d.level);
      setText(row.cells[2], state);
      setText(row.cells[3], d.health ? d.health + (d.message ? `: ${d.message}` : '') : '');
    }
    dirty.doors.clear();
  }

  function renderLifts() {
    const tbody = $('lifts').tBodies[0];
    for (const name of dirty.lifts) {
      const l = lifts.get(name);
      if (!l) continue;
      const row = rowFor(tbody, l, 'data-lift', l.name, ['id', 'floor', 'state', 'motion', 'mode', 'health']);
      const s = l.state || {};
      const door = LIFT_DOORS[s.door_state] || 'unknown';
      const motion = LIFT_MOTION[s.motion_state] || 'unknown';
      const mode = LIFT_MODES[s.current_mode] || 'unknown';
      setAttr(row, 'data-floor', s.current_floor || '');
      setAttr(row, 'data-state', door);
      setAttr(row, 'data-motion', motion);
      setAttr(row, 'data-mode', mode);
      setAttr(row, 'data-health', l.health || 'unknown');
      setText(row.cells[0], name);
      setText(row.cells[1], s.current_floor ? `${s.current_floor}${s.destination_floor && s.destination_floor !== s.current_floor ? ` → ${s.destination_floor}` : ''}` : '');
      setText(row.cells[2], door);
      setText(row.cells[3], motion);
      setText(row.cells[4], mode);
      setText(row.cells[5], l.health ? l.health + (l.message ? `: ${l.message}` : '') : '');
    }
    dirty.lifts.clear();
  }

  function robotColor(r) {
    if (r.health === 'Dead' || r.status === 'offline' || r.status === 'shutdown' || r.status === 'uninitialized') return COLORS.offline;
    if (r.stuck || r.status === 'error') return COLORS.error;
    return COLORS[r.status] || COLORS.idle;
  }

  function renderRobots() {
    const tbody = $('robots').tBodies[0];
    for (const key of dirty.robots) {
      const r = robots.get(key);
      if (!r) continue;
      const row = rowFor(tbody, r, 'data-robot', r.key, ['', 'id', 'status', 'level', 'battery', 'id', 'health']);
      setAttr(row, 'data-status', r.status);
      setAttr(row, 'data-level', r.level);
      setAttr(row, 'data-stuck', r.stuck);
      setAttr(row, 'data-battery-low', r.batteryLow);
      setAttr(row, 'data-health', r.health);
      setText(row.cells[0], r.fleet);
      setText(row.cells[1], r.name);
      setText(row.cells[2], r.status + (r.stuck ? ' (stuck)' : ''));
      setText(row.cells[3], r.level);
      setText(row.cells[4], r.battery == null ? '' : `${Math.round(r.battery * 100)} %${r.batteryLow ? ' low' : ''}`);
      setText(row.cells[5], r.taskId);
      setText(row.cells[6], r.health + (r.healthMessage ? `: ${r.healthMessage}` : ''));
    }
    dirty.robots.clear();
    if (level) {
      let n = 0;
      for (const r of robots.values()) if (r.level === level) n++;
      setText($('level-robots'), `${n} robots on ${level}`);
    }
  }

  function renderTasks() {
    dirty.tasks = false;
    const all = [];
    for (const f of fleets.values()) for (const t of f.queue) all.push([f.name, t]);
    all.sort((a, b) => (a[1].unix_millis_start_time || 0) - (b[1].unix_millis_start_time || 0)
      || String(a[1].task_id).localeCompare(String(b[1].task_id)));
    const rows = [];
    for (const [fleet, t] of all.slice(0, MAX_TASK_ROWS)) {
      const tr = el('tr');
      tr.dataset.task = t.task_id;
      tr.dataset.status = t.status || '';
      for (const [cls, text] of [['id', t.task_id], ['', t.category || ''], ['status', t.status || ''],
        ['', fleet], ['', t.robot || ''], ['', fmtTime(t.unix_millis_start_time)]]) {
        tr.append(el('td', cls, String(text)));
      }
      rows.push(tr);
    }
    $('tasks').tBodies[0].replaceChildren(...rows);
    setText($('tasks-more'), all.length > MAX_TASK_ROWS ? `and ${all.length - MAX_TASK_ROWS} more` : '');
  }

  function renderAlerts() {
    dirty.alerts = false;
    const ul = $('alerts');
    const ordered = [...alerts.values()].sort((a, b) => (b.alert.unix_millis_alert_time || 0) - (a.alert.unix_millis_alert_time || 0));
    for (const x of ordered) {
      const a = x.alert;
      if (!x.li) {
        x.li = el('li');
        x.li.dataset.alert = a.id;
        x.li.dataset.tier = a.tier || 'info';
        x.li.append(el('div', 'title', a.title || a.id), el('div', '', a.subtitle || ''),
          el('div', '', a.message || ''), el('div', 'meta', `${fmtTime(a.unix_millis_alert_time)} · ${a.id}`),
          el('div', 'actions'), el('div', 'error'));
      }
      setAttr(x.li, 'data-answered', !!x.response);
      const actions = x.li.querySelector('.actions');
      if (x.response) {
        if (!actions.querySelector('.answer')) actions.replaceChildren(el('span', 'answer', `answered: ${x.response}`));
        setAttr(x.li, 'data-response', x.response);
      } else if (!actions.children.length) {
        for (const resp of a.responses_available || []) {
          const b = el('button', '', resp);
          b.type = 'button';
          b.dataset.response = resp;
          b.addEventListener('click', () => respond(a.id, resp, b));
          actions.append(b);
        }
      }
      setText(x.li.querySelector('.error'), x.error || '');
    }
    // Newest first; moves only the rows that are out of place.
    let prev = null;
    for (const x of ordered) {
      const want = prev ? prev.nextSibling : ul.firstChild;
      if (want !== x.li) ul.insertBefore(x.li, want);
      prev = x.li;
    }
  }

  // ---- floor plan ------------------------------------------------------------------------------

  const images = new Map(); // url -> HTMLImageElement
  let staticLayer = null; // {level, w, h, canvas}
  let view = null; // {scale, ox, oy} world -> pixels

  function levelDef() { return map && map.levels.find((l) => l.name === level); }

  function imageOf(img) {
    const url = typeof img.data === 'string' && img.data.startsWith('/') ? PREFIX + img.data : null;
    if (!url) return null;
    let i = images.get(url);
    if (!i) {
      i = new Image();
      i.onload = () => { staticLayer = null; dirty.map = true; schedule(); };
      i.src = url;
      images.set(url, i);
    }
    return i.complete && i.naturalWidth ? i : null;
  }

  function bounds(lv) {
    let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
    const add = (x, y) => { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); };
    for (const g of lv.nav_graphs || []) for (const v of g.vertices || []) add(v.x, v.y);
    for (const d of lv.doors || []) { add(d.v1_x, d.v1_y); add(d.v2_x, d.v2_y); }
    for (const im of lv.images || []) {
      const i = imageOf(im);
      if (i) { add(im.x_offset, im.y_offset); add(im.x_offset + i.naturalWidth * im.scale, im.y_offset - i.naturalHeight * im.scale); }
    }
    if (!Number.isFinite(x0)) return [-10, -10, 10, 10];
    return [x0 - 1, y0 - 1, x1 + 1, y1 + 1];
  }

  const px = (x) => view.ox + x * view.scale;
  const py = (y) => view.oy - y * view.scale;

  function drawStatic(lv, w, h) {
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const g = c.getContext('2d');
    const [x0, y0, x1, y1] = bounds(lv);
    const scale = Math.min(w / (x1 - x0), h / (y1 - y0));
    view = { scale, ox: (w - (x1 - x0) * scale) / 2 - x0 * scale, oy: (h - (y1 - y0) * scale) / 2 + y1 * scale };
    for (const im of lv.images || []) {
      const i = imageOf(im);
      if (!i) continue;
      g.save();
      g.globalAlpha = 0.55;
      g.translate(px(im.x_offset), py(im.y_offset));
      g.rotate(-(im.yaw || 0));
      g.drawImage(i, 0, 0, i.naturalWidth * im.scale * scale, i.naturalHeight * im.scale * scale);
      g.restore();
    }
    g.strokeStyle = '#c7ccd6';
    g.lineWidth = Math.max(1, scale * 0.12);
    g.beginPath();
    for (const gr of lv.nav_graphs || []) {
      const vs = gr.vertices || [];
      for (const e of gr.edges || []) {
        const a = vs[e.v1_idx]; const b = vs[e.v2_idx];
        if (!a || !b) continue;
        g.moveTo(px(a.x), py(a.y));
        g.lineTo(px(b.x), py(b.y));
      }
    }
    g.stroke();
    g.fillStyle = '#6b7280';
    g.font = `${Math.max(9, Math.min(12, scale * 0.5))}px system-ui`;
    for (const gr of lv.nav_graphs || []) {
      for (const v of gr.vertices || []) {
        if (!v.name) continue;
        g.fillRect(px(v.x) - 1.5, py(v.y) - 1.5, 3, 3);
        g.fillText(v.name, px(v.x) + 3, py(v.y) - 3);
      }
    }
    return { level: lv.name, w, h, canvas: c };
  }

  function drawMap() {
    dirty.map = false;
    const canvas = $('map');
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, w, h);
    const lv = levelDef();
    if (!lv) return;
    if (!staticLayer || staticLayer.level !== lv.name || staticLayer.w !== w || staticLayer.h !== h) {
      staticLayer = drawStatic(lv, w, h);
    }
    g.drawImage(staticLayer.canvas, 0, 0);
    const s = view.scale;
    // Lifts serving this level.
    for (const l of lifts.values()) {
      const d = l.def;
      if (!d || !(d.levels || []).includes(lv.name)) continue;
      const st = l.state || {};
      const here = st.current_floor === lv.name;
      const mode = LIFT_MODES[st.current_mode] || 'unknown';
      g.save();
      g.translate(px(d.ref_x), py(d.ref_y));
      g.rotate(-(d.ref_yaw || 0));
      g.fillStyle = mode === 'fire' || mode === 'emergency' ? 'rgba(220,38,38,0.45)'
        : l.health === 'Dead' || mode === 'offline' ? 'rgba(156,163,175,0.5)'
          : here ? 'rgba(37,99,235,0.35)' : 'rgba(37,99,235,0.1)';
      g.strokeStyle = '#1e3a8a';
      g.lineWidth = 1.5;
      g.fillRect(-d.width * s / 2, -d.depth * s / 2, d.width * s, d.depth * s);
      g.strokeRect(-d.width * s / 2, -d.depth * s / 2, d.width * s, d.depth * s);
      g.fillStyle = '#1e3a8a';
      g.font = `${Math.max(10, Math.min(13, s * 0.6))}px system-ui`;
      g.fillText(`${l.name} ${st.current_floor || '?'}`, -d.width * s / 2, -d.depth * s / 2 - 3);
      g.restore();
    }
    // Doors.
    g.lineCap = 'round';
    for (const d of doors.values()) {
      if (d.level !== lv.name || !d.geom) continue;
      const state = d.mode == null ? 'unknown' : (DOOR_MODES[d.mode] || 'unknown');
      g.strokeStyle = d.health === 'Dead' ? COLORS.dead : (COLORS[state] || COLORS.dead);
      g.lineWidth = Math.max(3, s * 0.25);
      g.setLineDash(state === 'open' ? [Math.max(2, s * 0.2), Math.max(2, s * 0.2)] : []);
      g.beginPath();
      g.moveTo(px(d.geom.v1_x), py(d.geom.v1_y));
      g.lineTo(px(d.geom.v2_x), py(d.geom.v2_y));
      g.stroke();
      if (d.heldOpen) {
        g.setLineDash([]);
        g.strokeStyle = COLORS.error;
        g.lineWidth = 2;
        g.beginPath();
        g.arc(px((d.geom.v1_x + d.geom.v2_x) / 2), py((d.geom.v1_y + d.geom.v2_y) / 2), Math.max(8, s * 1.2), 0, 2 * Math.PI);
        g.stroke();
      }
    }
    g.setLineDash([]);
    // Robots: a disc coloured by status and a heading tick; a ring when an alert condition holds.
    // One path per colour: a large site has hundreds of robots per level.
    const radius = Math.max(3, Math.min(12, s * 0.35));
    const byColor = new Map();
    const ticks = new Path2D();
    const rings = new Path2D();
    for (const r of robots.values()) {
      if (r.level !== lv.name) continue;
      const x = px(r.x); const y = py(r.y);
      const color = robotColor(r);
      let path = byColor.get(color);
      if (!path) { path = new Path2D(); byColor.set(color, path); }
      path.moveTo(x + radius, y);
      path.arc(x, y, radius, 0, 2 * Math.PI);
      ticks.moveTo(x, y);
      ticks.lineTo(x + Math.cos(r.yaw) * radius, y - Math.sin(r.yaw) * radius);
      if (r.stuck || r.batteryLow || r.health !== 'Healthy') {
        rings.moveTo(x + radius + 3, y);
        rings.arc(x, y, radius + 3, 0, 2 * Math.PI);
      }
    }
    for (const [color, path] of byColor) {
      g.fillStyle = color;
      g.fill(path);
    }
    g.strokeStyle = '#fff';
    g.lineWidth = Math.max(1, radius / 4);
    g.stroke(ticks);
    g.strokeStyle = COLORS.error;
    g.lineWidth = 2;
    g.stroke(rings);
  }

  // ---- charts ------------------------------------------------------------------------------------

  function prepare(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const cw = w / ratio; const ch = h / ratio;
    g.clearRect(0, 0, cw, ch);
    g.font = '11px system-ui';
    return [g, cw, ch];
  }

  function axes(g, cw, ch, max, pad) {
    g.strokeStyle = '#d9dde3';
    g.fillStyle = '#6b7280';
    g.beginPath();
    g.moveTo(pad, 4); g.lineTo(pad, ch - 16); g.lineTo(cw - 4, ch - 16);
    g.stroke();
    g.fillText(String(max), 2, 12);
    g.fillText('0', 2, ch - 16);
    g.fillText('-15 min', pad, ch - 3);
    g.fillText('now', cw - 24, ch - 3);
  }

  function renderCharts() {
    dirty.charts = false;
    const which = $('fleet-select').value;
    const chosen = [...fleets.values()].filter((f) => !which || f.name === which);
    const now = dataTime;
    // Per-minute windows (the latest value of each tumbling window).
    const minute = 60000;
    const last = Math.floor(now / minute) * minute;
    const bars = [];
    for (let i = 14; i >= 0; i--) {
      const start = last - i * minute;
      let c = 0; let f = 0; let seen = false;
      for (const fl of chosen) {
        const m = fl.minutes.get(start);
        if (m) { c += m.completed; f += m.failed; seen = true; }
      }
      bars.push({ c, f, seen });
    }
    for (const fl of fleets.values()) for (const k of fl.minutes.keys()) if (k < last - WINDOW_MS) fl.minutes.delete(k);
    {
      const [g, cw, ch] = prepare($('chart-minutes'));
      const max = Math.max(1, ...bars.map((b) => b.c + b.f));
      const pad = 22;
      axes(g, cw, ch, max, pad);
      const bw = (cw - pad - 8) / 15;
      bars.forEach((b, i) => {
        const x = pad + 2 + i * bw;
        const hc = (b.c / max) * (ch - 22);
        const hf = (b.f / max) * (ch - 22);
        g.fillStyle = COLORS.charging;
        g.fillRect(x, ch - 16 - hc, bw - 3, hc);
        g.fillStyle = COLORS.error;
        g.fillRect(x, ch - 16 - hc - hf, bw - 3, hf);
        if (!b.seen) { g.fillStyle = '#e5e7eb'; g.fillRect(x, ch - 18, bw - 3, 2); }
      });
    }
    {
      // The sliding-window counts of the chosen fleet (or their sum), as a step line.
      const points = which ? (fleets.get(which) || { series: [] }).series : site.series;
      const [g, cw, ch] = prepare($('chart-window'));
      const max = Math.max(1, ...points.map((p) => p[1] + p[2]));
      const pad = 22;
      axes(g, cw, ch, max, pad);
      const x = (t) => pad + ((t - (now - WINDOW_MS)) / WINDOW_MS) * (cw - pad - 4);
      const y = (v) => ch - 16 - (v / max) * (ch - 22);
      for (const [idx, color] of [[1, COLORS.charging], [2, COLORS.error]]) {
        g.strokeStyle = color;
        g.lineWidth = 2;
        g.beginPath();
        let prev = null;
        for (const p of points) {
          if (p[0] < now - WINDOW_MS) { prev = p; continue; }
          const v = idx === 1 ? p[1] : p[2];
          if (prev === null) g.moveTo(x(p[0]), y(v));
          else { g.lineTo(x(p[0]), y(idx === 1 ? prev[1] : prev[2])); g.lineTo(x(p[0]), y(v)); }
          prev = p;
        }
        if (prev) g.lineTo(x(now), y(idx === 1 ? prev[1] : prev[2]));
        g.stroke();
      }
    }
    // The fleets table.
    const rows = [];
    for (const fl of [...fleets.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const t = fl.t15m || {};
      const tr = el('tr');
      tr.dataset.fleet = fl.name;
      const by = Object.entries(t.robots_by_status || {}).map(([k, v]) => `${k} ${v}`).join(', ');
      for (const text of [fl.name, by, t.completed ?? '', t.failed ?? '', fmtDuration(t.mean_duration_ms)]) {
        tr.append(el('td', '', String(text)));
      }
      rows.push(tr);
    }
    $('fleets').tBodies[0].replaceChildren(...rows);
  }

  // ---- sign-in -----------------------------------------------------------------------------------

  function showLogin(message) {
    if (socket) { socket.close(); socket = null; }
    setText($('login-error'), message || '');
    $('login').hidden = false;
    $('token-input').focus();
  }

  function useToken(t) {
    token = t;
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    $('logout').hidden = !t;
  }

  async function start() {
    try {
      const r = await fetch(`${PREFIX}/view/config.json`, { cache: 'no-store' });
      authEnabled = r.ok ? !!(await r.json()).auth : true;
    } catch (e) {
      authEnabled = true;
    }
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get('token')) {
      useToken(fragment.get('token'));
      // Keep the token out of the address bar and the history.
      history.replaceState(null, '', location.pathname + location.search);
    } else {
      useToken(sessionStorage.getItem(TOKEN_KEY));
    }
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token-input').value.trim();
      if (!t) return;
      useToken(t);
      $('login').hidden = true;
      connect();
    });
    $('logout').addEventListener('click', () => { useToken(null); showLogin(''); });
    $('level-select').addEventListener('change', (ev) => { level = ev.target.value; dirty.map = true; dirty.robots.add(''); schedule(); });
    $('fleet-select').addEventListener('change', () => { dirty.charts = true; schedule(); });
    new ResizeObserver(() => { dirty.map = true; dirty.charts = true; schedule(); }).observe($('map-box'));
    subscribe('/building_map', (v) => setMap(v));
    subscribe('/alerts/requests', () => {});
    subscribe('/alerts/responses', () => {});
    setInterval(() => { if (socket && socket.connected) pollFleets(); }, FLEET_POLL_MS);
    // The charts' time axis moves with the data even when no count changes.
    setInterval(() => { dirty.charts = true; schedule(); }, 5000);
    if (authEnabled && !token) showLogin('');
    else connect();
  }

  const pct = (arr, p) => {
    if (!arr.length) return null;
    const s = [...arr].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  window.rmfView = {
    socket: null,
    rooms: () => rooms.size,
    stats: () => ({
      frames: metrics.frames,
      events: metrics.events,
      frame_ms: { p50: pct(metrics.frameMs, 0.5), p95: pct(metrics.frameMs, 0.95), max: pct(metrics.frameMs, 1) },
      frame_interval_ms: { p50: pct(metrics.intervalMs, 0.5), p95: pct(metrics.intervalMs, 0.95), max: pct(metrics.intervalMs, 1) },
      update_to_frame_ms: { p50: pct(metrics.delayMs, 0.5), p95: pct(metrics.delayMs, 0.95), max: pct(metrics.delayMs, 1) },
      parts: Object.fromEntries(Object.entries(metrics.parts).map(([k, v]) => [k, { total_ms: Math.round(v.total), max_ms: Math.round(v.max), n: v.n }])),
    }),
    resetStats: () => {
      metrics.frameMs = []; metrics.delayMs = []; metrics.intervalMs = []; metrics.frames = 0; metrics.events = 0; metrics.parts = {};
    },
  };
  start();
})();
