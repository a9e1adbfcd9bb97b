// The live view's door and lift counts in headless Chromium (Debian's chromium, driven by
// playwright-core): opens the page (no authentication) and waits, at most SECONDS, until it
// shows DOORS doors and LIFTS lifts. Prints {doors, lifts, errors}.
//
// usage: node view_counts.mjs URL DOORS LIFTS SECONDS
import { chromium } from "playwright-core";

const [url, doors, lifts, seconds] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  const counts = () => page.evaluate(() => ({
    doors: Number(document.getElementById("door-count").dataset.count),
    lifts: Number(document.getElementById("lift-count").dataset.count),
  }));
  const until = Date.now() + Number(seconds) * 1000;
  let now = await counts();
  while (Date.now() < until && !(now.doors === Number(doors) && now.lifts === Number(lifts))) {
    await new Promise((ok) => setTimeout(ok, 200));
    now = await counts();
  }
  console.log(JSON.stringify({ ...now, errors }));
} finally {
  await browser.close();
}
