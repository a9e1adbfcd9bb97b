// The live view in headless Chromium (Playwright's playwright-core driving Debian's chromium)
// against `rmf-dash serve` replaying a recording. Run by tests/view.rs with one JSON argument:
//   {url, token, expect: {robots, doors, lifts}, door: {name, modes}, screenshot, timeoutMs}
// `door.modes` is the door's sequence of states in the recording (consecutive duplicates
// removed). Prints one JSON line of results; exits non-zero with a reason on the first failure.
import { chromium } from 'playwright-core';

const args = JSON.parse(process.argv[2]);
const timeout = args.timeoutMs ?? 60000;
const MODES = ['closed', 'moving', 'open', 'offline', 'unknown'];
const results = {};
const problems = [];

function check(ok, what) {
  if (!ok) throw new Error(what);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  // 1. With the token in the URL fragment: connects, and the token leaves the address bar.
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  // Every state the door's row shows, recorded in the page as it changes.
  await page.addInitScript((door) => {
    window.__doorStates = [];
    new MutationObserver((records) => {
      for (const r of records) {
        const t = r.target;
        if (t.nodeType === 1 && t.getAttribute('data-door') === door && r.attributeName === 'data-state') {
          const s = t.getAttribute('data-state');
          const log = window.__doorStates;
          if (log[log.length - 1] !== s) log.push(s);
        }
        if (t.nodeType === 1 && t.getAttribute('data-door') === door && t.getAttribute('data-held-open') === 'true') {
          window.__doorHeld = true;
        }
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state', 'data-held-open'] });
  }, args.door.name);
  await page.goto(`${args.url}#token=${encodeURIComponent(args.token)}`);
  await page.waitForSelector('#connection[data-state="connected"]', { timeout });
  check(!page.url().includes('token='), `the token stayed in the URL: ${page.url()}`);

  // 2. Every robot, door and lift of the recording, in the counters and as rows / map entries.
  const { robots, doors, lifts } = args.expect;
  // The counters, then the rows (rendered at the next animation frame).
  await page.waitForFunction(([r, d, l]) => {
    const n = (id) => +document.getElementById(id).getAttribute('data-count');
    return n('robot-count') === r && n('door-count') === d && n('lift-count') === l;
  }, [robots, doors, lifts], { timeout });
  await page.waitForFunction(([r, d, l]) => {
    const rows = (sel) => document.querySelectorAll(sel).length;
    return rows('#robots tr[data-robot]') >= r && rows('#doors tr[data-door]') >= d
      && rows('#lifts tr[data-lift]') >= l;
  }, [robots, doors, lifts], { timeout }).catch(() => {});
  results.rows = await page.evaluate(() => ({
    robots: document.querySelectorAll('#robots tr[data-robot]').length,
    doors: document.querySelectorAll('#doors tr[data-door]').length,
    lifts: document.querySelectorAll('#lifts tr[data-lift]').length,
    levels: document.querySelectorAll('#level-select option').length,
  }));
  check(results.rows.robots === robots && results.rows.doors === doors && results.rows.lifts === lifts,
    `rows ${JSON.stringify(results.rows)} != ${JSON.stringify(args.expect)}`);
  // Every lift row shows its floor once its state arrived.
  await page.waitForFunction(() => [...document.querySelectorAll('#lifts tr[data-lift]')]
    .every((r) => r.getAttribute('data-floor')), null, { timeout });

  // 3. The door the recording holds open: the screen goes through its states in order, shows it
  //    held open, and closed again when the recording closes it.
  const modes = args.door.modes.map((m) => MODES[m] ?? 'unknown');
  await page.waitForFunction(() => window.__doorHeld === true, null, { timeout });
  const last = modes[modes.length - 1];
  await page.waitForFunction(([name, s]) => {
    const row = document.querySelector(`#doors tr[data-door="${name}"]`);
    return row && row.getAttribute('data-state') === s && row.getAttribute('data-held-open') === 'false'
      && window.__doorHeld === true;
  }, [args.door.name, last], { timeout });
  // `unknown`: the row exists before the door's first state arrives.
  const seen = (await page.evaluate(() => window.__doorStates)).filter((s) => s !== 'unknown');
  // What the screen showed is the recording's sequence, possibly with steps coalesced away.
  let i = 0;
  for (const s of seen) {
    while (i < modes.length && modes[i] !== s) i++;
    check(i < modes.length, `door ${args.door.name} showed ${JSON.stringify(seen)}, not a subsequence of the recording's ${JSON.stringify(modes)}`);
  }
  check(seen.includes('open') && seen.length >= 2, `door ${args.door.name} showed only ${JSON.stringify(seen)}`);
  results.door = { name: args.door.name, seen };

  // 4. After a dropped connection the page reconnects, subscribes again and keeps updating.
  const before = await page.textContent('#data-time');
  await page.evaluate(() => window.rmfView.socket.io.engine.close());
  await page.waitForSelector('#connection[data-state="disconnected"]', { timeout });
  await page.waitForSelector('#connection[data-state="connected"]', { timeout });
  await page.waitForFunction((t) => document.getElementById('data-time').textContent > t, before, { timeout });
  results.reconnected = true;

  // 5. An alert appears with its responses; answering it calls the REST route, and the alert
  //    shows as answered (here and on the server).
  const button = await page.waitForSelector('#alerts li[data-answered="false"] button[data-response]', { timeout });
  const response = await button.getAttribute('data-response');
  const id = await button.evaluate((b) => b.closest('li').getAttribute('data-alert'));
  const openBefore = +(await page.getAttribute('#alert-count', 'data-count'));
  await button.click();
  const li = `#alerts li[data-alert="${id.replace(/"/g, '\\"')}"]`;
  await page.waitForSelector(`${li}[data-answered="true"]`, { timeout });
  check(await page.getAttribute(li, 'data-response') === response, 'the alert shows another response');
  const stored = await fetch(`${args.url.replace(/\/$/, '')}/alerts/request/${encodeURIComponent(id)}/response`, {
    headers: { Authorization: `Bearer ${args.token}` },
  });
  check(stored.status === 200, `GET the response: ${stored.status}`);
  const body = await stored.json();
  check(body.id === id && body.response === response, `server has ${JSON.stringify(body)}`);
  results.alert = { id, response, open_before: openBefore };

  results.tasks_rows = await page.evaluate(() => document.querySelectorAll('#tasks tr[data-task]').length);
  await page.screenshot({ path: args.screenshot, fullPage: true });
  results.stats = await page.evaluate(() => window.rmfView.stats());
  // 6. Without a token the page asks for one; the sign-in form connects with it.
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(args.url);
    await page.waitForSelector('#login:not([hidden])', { timeout });
    check(await page.getAttribute('#connection', 'data-state') !== 'connected', 'connected without a token');
    await page.fill('#token-input', 'not-a-jwt');
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#connection[data-state="refused"]', { timeout });
    await page.waitForSelector('#login:not([hidden])', { timeout });
    results.bad_token_refused = true;
    await page.fill('#token-input', args.token);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#connection[data-state="connected"]', { timeout });
    results.sign_in_form = true;
    await context.close();
  }

  check(problems.length === 0, `page problems: ${problems.join('; ')}`);
  console.log(JSON.stringify(results));
} catch (e) {
  console.error(`view test failed: ${e.message}`);
  console.error(JSON.stringify({ results, problems }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
