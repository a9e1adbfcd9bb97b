// What the rmf-web dashboard does from its own origin, in headless Chromium (Debian's chromium,
// driven by playwright-core): a page served by this script on a second loopback port calls the
// API at another origin with `Authorization: Bearer` (REST reads, a JSON POST: both need a CORS
// preflight), connects socket.io there (polling first, then websocket, as socket.io-client's
// defaults), subscribes to `/building_map` and loads the map's first image by its URL as an
// <img>, as the dashboard's texture loader does.
//
// Prints one JSON summary per API URL: {api, fleets, mapLevels, imageWidth, alertStatus,
// socketConnected, events, errors, consoleErrors, failedRequests}.
//
// usage: node cross_origin.mjs TOKEN SECONDS API_URL...
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const [token, seconds, ...apis] = process.argv.slice(2);

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>cross-origin client</title></head>
<body><script>
const params = new URLSearchParams(location.search);
const api = params.get('api');
const token = params.get('token');
const seconds = Number(params.get('seconds'));
const out = { api, fleets: null, mapLevels: null, imageWidth: null, alertStatus: null,
  socketConnected: false, events: 0, errors: [] };
const headers = { Authorization: 'Bearer ' + token };
function done() { window.__result = out; }
async function rest() {
  try {
    const f = await fetch(api + '/fleets', { headers });
    out.fleets = f.status === 200 ? (await f.json()).length : 'status ' + f.status;
  } catch (e) { out.errors.push('GET /fleets: ' + e); }
  try {
    const id = 'cross-origin-' + Math.random().toString(36).slice(2);
    const body = { id, unix_millis_alert_time: 1234, title: 't', subtitle: 's', message: 'm',
      display: true, tier: 'info', responses_available: ['ok'], alert_parameters: [], task_id: null };
    const a = await fetch(api + '/alerts/request', { method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    out.alertStatus = a.status;
  } catch (e) { out.errors.push('POST /alerts/request: ' + e); }
}
function loadImage(url) {
  const img = new Image();
  img.onload = () => { out.imageWidth = img.naturalWidth; };
  img.onerror = () => { out.errors.push('image ' + url + ' did not load'); };
  img.src = url;
}
const script = document.createElement('script');
script.src = api + '/view/socket.io.min.js';
script.onerror = () => { out.errors.push('socket.io client did not load'); done(); };
script.onload = () => {
  const u = new URL(api);
  const socket = io(u.origin, { path: u.pathname.replace(/\\/$/, '') + '/socket.io', auth: { token } });
  socket.on('connect', () => {
    out.socketConnected = true;
    socket.emit('subscribe', { room: '/building_map' });
  });
  socket.on('connect_error', (e) => out.errors.push('connect_error: ' + e.message));
  socket.on('/building_map', (map) => {
    out.events += 1;
    if (out.mapLevels === null && map && Array.isArray(map.levels)) {
      out.mapLevels = map.levels.length;
      const image = map.levels[0] && map.levels[0].images[0];
      if (image) loadImage(image.data);
    }
  });
  rest();
  setTimeout(() => { socket.close(); done(); }, seconds * 1000);
};
document.head.appendChild(script);
</script></body></html>`;

const server = createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
  res.end(PAGE);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  for (const api of apis) {
    const page = await browser.newPage();
    const consoleErrors = [];
    const failedRequests = [];
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    page.on("requestfailed", (r) => failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
    page.on("response", (r) => { if (r.status() >= 400) failedRequests.push(`${r.request().method()} ${r.url()}: ${r.status()}`); });
    const q = new URLSearchParams({ api, token, seconds });
    await page.goto(`${origin}/?${q}`);
    await page.waitForFunction(() => window.__result, null, { timeout: (Number(seconds) + 30) * 1000 });
    const result = await page.evaluate(() => window.__result);
    console.log(JSON.stringify({ ...result, origin, consoleErrors, failedRequests }));
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
