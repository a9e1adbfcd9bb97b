// Responsiveness of the live view under load, in headless Chromium (not a test: prints numbers).
//   node view_measure.mjs URL [SECONDS=60] [ROBOTS=0]
// Opens URL (add `?coalesce=0` for the baseline that redraws on every event), waits until the
// page counts ROBOTS robots (when given), then for SECONDS records: the intervals between
// animation frames (a busy main thread stretches them), long tasks (> 50 ms), the page's own
// work per frame and delay from the hub's send to the frame that applied it, and the time from a
// level switch (user input) to the next frame. Prints one JSON object.
import { chromium } from 'playwright-core';

const [url, seconds = '60', robots = '0'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on('pageerror', (e) => console.error('pageerror', e.message));
const t0 = Date.now();
await page.goto(url);
await page.waitForFunction((n) => +document.getElementById('robot-count').getAttribute('data-count') >= Math.max(1, n),
  +robots, { timeout: 120000 });
const loadedMs = Date.now() - t0;
await page.waitForTimeout(3000);
await page.evaluate(() => {
  window.__m = { intervals: [], long: [], last: 0 };
  const loop = (t) => {
    if (window.__m.last) window.__m.intervals.push(t - window.__m.last);
    window.__m.last = t;
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__m.long.push(e.duration); })
    .observe({ type: 'longtask', buffered: false });
  window.rmfView.resetStats();
});
// Where the main thread's time goes (Chrome's own counters, as deltas over the run).
const cdp = await page.context().newCDPSession(page);
await cdp.send('Performance.enable');
const counters = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
const before = await counters();
const input = [];
const end = Date.now() + +seconds * 1000;
while (Date.now() < end) {
  await page.waitForTimeout(2000);
  // A level switch, timed from the input event to the frame after it.
  input.push(await page.evaluate(() => new Promise((resolve) => {
    const s = document.getElementById('level-select');
    const start = performance.now();
    s.selectedIndex = (s.selectedIndex + 1) % s.options.length;
    s.dispatchEvent(new Event('change'));
    requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
  })));
}
const out = await page.evaluate(() => {
  const q = (arr, p) => { const s = [...arr].sort((a, b) => a - b); return s.length ? +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1) : null; };
  const m = window.__m;
  return {
    robots: +document.getElementById('robot-count').getAttribute('data-count'),
    rooms: window.rmfView.rooms(),
    frames: m.intervals.length,
    frame_interval_ms: { p50: q(m.intervals, 0.5), p95: q(m.intervals, 0.95), p99: q(m.intervals, 0.99), max: q(m.intervals, 1) },
    frames_over_50ms: m.intervals.filter((x) => x > 50).length,
    long_tasks: m.long.length,
    long_task_ms: +m.long.reduce((a, b) => a + b, 0).toFixed(0),
    page: window.rmfView.stats(),
  };
});
const after = await counters();
out.main_thread_s = Object.fromEntries(['TaskDuration', 'ScriptDuration', 'LayoutDuration', 'RecalcStyleDuration']
  .map((k) => [k, +(after[k] - before[k]).toFixed(2)]));
const q = (arr, p) => { const s = [...arr].sort((a, b) => a - b); return +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1); };
out.url = url;
out.seconds = +seconds;
out.load_ms = loadedMs;
out.events_per_s = +(out.page.events / +seconds).toFixed(0);
out.input_to_frame_ms = { p50: q(input, 0.5), max: q(input, 1), n: input.length };
console.log(JSON.stringify(out));
await browser.close();
