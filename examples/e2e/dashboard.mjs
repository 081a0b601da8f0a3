// End-to-end test of the web_app demo's dashboard (`GET /`) in headless Chromium.
//
//     node dashboard.mjs [PATH/TO/web_app]          (or WEB_APP_BIN=PATH node dashboard.mjs)
//
// Starts the demo on port 0, drives the page like a person would (form, Cancel button,
// keyboard), checks what it shows against what the server says, takes the screenshot committed
// as docs/dashboard.png, and stops the server with SIGTERM. Every step is named; the first one
// that breaks fails the run with its name, the reason, and the server's last output.
//
// Environment: WEB_APP_BIN (the binary), CHROMIUM (default /usr/bin/chromium),
// SCREENSHOT (default <repo>/docs/dashboard.png; empty to skip), E2E_ARTIFACTS (a folder where a
// failing run leaves a screenshot of the page and the server log), HEADFUL=1 (to watch).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, "target");
const BIN = resolve(process.argv[2] || process.env.WEB_APP_BIN || join(TARGET, "debug/examples/web_app"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = process.env.SCREENSHOT ?? join(ROOT, "docs/dashboard.png");
const ARTIFACTS = process.env.E2E_ARTIFACTS || "";
const TOTAL_BUDGET_MS = 110_000;   // the whole run, startup to shutdown
const WAIT_MS = 15_000;            // one expectation on the page

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

// ---- the server ------------------------------------------------------------------------------
let server = null;
const serverOutput = [];
function remember(prefix, chunk) {
  for (const line of chunk.toString().split("\n")) if (line) serverOutput.push(prefix + line);
  if (serverOutput.length > 200) serverOutput.splice(0, serverOutput.length - 200);
}

function startServer() {
  if (!existsSync(BIN)) throw new Error(`no web_app binary at ${BIN} (build it with cargo build --example web_app, or pass its path)`);
  return new Promise((resolveAddr, reject) => {
    const child = spawn(BIN, ["--addr", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
    server = { child, exited: null };
    server.exitPromise = new Promise((r) => child.on("exit", (code, signal) => { server.exited = { code, signal }; r(server.exited); }));
    let buffered = "", first = true;
    const timer = setTimeout(() => reject(new Error("no `listening on` line on stdout within 20 s")), 20_000);
    child.on("error", (e) => { clearTimeout(timer); reject(new Error(`could not start ${BIN}: ${e.message}`)); });
    child.stderr.on("data", (c) => remember("stderr| ", c));
    child.stdout.on("data", (c) => {
      remember("stdout| ", c);
      if (!first) return;
      buffered += c.toString();
      const nl = buffered.indexOf("\n");
      if (nl < 0) return;
      first = false;
      clearTimeout(timer);
      const line = buffered.slice(0, nl).trim();
      const m = /^listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolveAddr(m[1].replace(/\/$/, ""));
      else reject(new Error(`first stdout line is ${JSON.stringify(line)}, expected "listening on http://ADDR"`));
    });
    server.exitPromise.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the server exited before listening (code ${code}, signal ${signal})`));
    });
  });
}

async function stopServer() {
  if (!server || server.exited) return server && server.exited;
  server.child.kill("SIGTERM");
  let timer;
  const exited = await Promise.race([server.exitPromise, new Promise((r) => { timer = setTimeout(() => r(null), 10_000); })]);
  clearTimeout(timer);
  if (!exited) { server.child.kill("SIGKILL"); await server.exitPromise; throw new Error("the server did not exit within 10 s of SIGTERM (killed)"); }
  return exited;
}

// ---- helpers ---------------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function getJson(url) {
  const res = await fetch(url, { cache: "no-store" });
  const text = await res.text();
  try { return { status: res.status, body: JSON.parse(text) }; }
  catch { return { status: res.status, body: text }; }
}

// Polls `fn` until it returns a truthy value; the error names what was awaited and the last state.
async function until(what, fn, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last && last.ok !== false) return last.seen !== undefined ? last.seen : last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last seen: ${JSON.stringify(last && last.seen !== undefined ? last.seen : last)}`);
    await sleep(100);
  }
}

// What the page shows for one job.
async function jobOnPage(page, id) {
  return page.evaluate((id) => {
    const li = document.querySelector(`#jobs [data-job-id="${CSS.escape(id)}"]`);
    if (!li) return null;
    const bar = li.querySelector("progress");
    const reason = li.querySelector(".reason-value");
    const cancel = li.querySelector('button[data-action="cancel"]');
    return {
      status: li.dataset.status,
      reason: reason && !reason.closest("[hidden]") ? reason.textContent : null,
      value: bar && bar.hasAttribute("value") ? Number(bar.getAttribute("value")) : null,
      max: bar ? Number(bar.getAttribute("max")) : null,
      count: (li.querySelector(".count") || {}).textContent,
      duration: (li.querySelector(".duration") || {}).textContent,
      name: (li.querySelector(".name") || {}).textContent,
      cancelButton: !!cancel,
      labelled: !!(bar && (bar.labels.length || bar.getAttribute("aria-labelledby") || bar.getAttribute("aria-label"))),
    };
  }, id);
}

// Submits the start form and returns the new job's id, from the POST /jobs answer.
async function startJobFromForm(page, steps, stepMs, { keyboard = false } = {}) {
  await page.fill("#steps", String(steps));
  await page.fill("#step-ms", String(stepMs));
  const answer = page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/jobs", { timeout: WAIT_MS })
    .catch(() => { throw new Error(`submitting the form sent no POST /jobs within ${WAIT_MS} ms`); });
  if (keyboard) { await page.focus("#step-ms"); await page.keyboard.press("Enter"); }
  else await page.click("#start");
  const res = await answer;
  if (res.status() !== 202) throw new Error(`POST /jobs answered ${res.status()}: ${await res.text()}`);
  const body = await res.json();
  if (typeof body.job_id !== "string") throw new Error(`POST /jobs answer has no job_id: ${JSON.stringify(body)}`);
  const sent = res.request().postDataJSON();
  if (sent.steps !== steps || sent.step_ms !== stepMs) throw new Error(`the form sent ${JSON.stringify(sent)}, expected steps ${steps}, step_ms ${stepMs}`);
  return body.job_id;
}

// ---- the run ---------------------------------------------------------------------------------
const steps = [];
let current = "setup";
async function step(name, fn) {
  current = name;
  const t = Date.now();
  const out = await fn();
  steps.push(name);
  log(`ok   ${name} (${Date.now() - t} ms)`);
  return out;
}

const consoleProblems = [];
let allowedConsole = [];   // regexes of console errors an on-purpose error step provokes
let browser = null, page = null, profile = null;

async function main() {
  const watchdog = setTimeout(() => fail(new Error(`the whole run took longer than ${TOTAL_BUDGET_MS / 1000} s`)), TOTAL_BUDGET_MS);
  watchdog.unref();

  const base = await step("start the server on port 0", startServer);
  log(`     server at ${base} (${BIN})`);

  await step("GET /health answers healthy", async () => {
    const { status, body } = await getJson(base + "/health");
    if (status !== 200 || !body || body.status !== "healthy") throw new Error(`GET /health: ${status} ${JSON.stringify(body)}`);
  });

  await step("launch headless Chromium", async () => {
    profile = mkdtempSync(join(tmpdir(), "dashboard-e2e-profile-"));
    const flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`];
    // launchPersistentContext is Playwright's way to give Chromium a fresh --user-data-dir (it
    // passes the folder itself), and `headless` adds --headless.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: process.env.HEADFUL !== "1", args: flags.filter((f) => !f.startsWith("--user-data-dir")),
      viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1, colorScheme: "light", timeout: 30_000,
    });
    page = browser.pages()[0] || await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("console", (m) => {
      if (m.type() !== "error" && m.type() !== "warning") return;
      const text = `${m.type()}: ${m.text()}`;
      if (m.type() === "error" && allowedConsole.some((re) => re.test(m.text()))) return;
      if (m.type() === "error") consoleProblems.push(`console ${text} (during "${current}")`);
      else log(`     console ${text}`);
    });
    page.on("pageerror", (e) => consoleProblems.push(`page error: ${e.message} (during "${current}")`));
    page.on("requestfailed", (r) => {
      if (!/ERR_ABORTED/.test(r.failure()?.errorText || "")) consoleProblems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText} (during "${current}")`);
    });
  });

  await step("open the dashboard", async () => {
    const res = await page.goto(base + "/", { waitUntil: "load" });
    if (!res || res.status() !== 200) throw new Error(`GET / answered ${res && res.status()}`);
    const type = res.headers()["content-type"] || "";
    if (!/^text\/html/.test(type)) throw new Error(`GET / has content-type ${JSON.stringify(type)}, expected text/html`);
    await until("the page to connect (header says live)", async () => ({ ok: (await page.textContent("#conn")) === "live", seen: await page.textContent("#conn") }));
    await until("the /stats panel to show numbers", async () => {
      const vals = await page.$$eval("#stats [data-stat]", (dds) => dds.map((d) => [d.dataset.stat, d.textContent]));
      return { ok: vals.length === 5 && vals.every(([, v]) => /^\d+$/.test(v)), seen: vals };
    });
    // Everything the page uses is inline: no request may leave for another origin.
    const external = await page.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name).filter((u) => !u.startsWith(location.origin)));
    if (external.length) throw new Error(`the page loaded resources from elsewhere: ${external.join(", ")}`);
  });

  await step("the page lives on one feed: no polling, no requests counted in /stats", async () => {
    const seen = [];
    const onRequest = (r) => seen.push(new URL(r.url()).pathname);
    page.on("request", onRequest);
    try {
      const before = await getJson(base + "/stats");
      await sleep(1500);   // three polling rounds of the old page
      const after = await getJson(base + "/stats");
      // The first GET /stats itself is the one completed request in between.
      const grew = after.body.completed_requests - before.body.completed_requests;
      if (grew > 1) throw new Error(`completed_requests grew by ${grew} in 1.5 s with only the page open (it polls?)`);
      const polled = seen.filter((p) => p !== "/dashboard/events");
      if (polled.length) throw new Error(`the page requested ${polled.join(", ")} while idle`);
    } finally { page.off("request", onRequest); }
  });

  await step("the form is labelled and keyboard-reachable", async () => {
    const labels = await page.evaluate(() => ["steps", "step-ms"].map((id) => { const i = document.getElementById(id); return i && i.labels.length ? i.labels[0].textContent.trim() : null; }));
    if (labels.some((l) => !l)) throw new Error(`form fields without a <label>: ${JSON.stringify(labels)}`);
    await page.focus("body");
    const order = [];
    for (let i = 0; i < 3; i++) { await page.keyboard.press("Tab"); order.push(await page.evaluate(() => document.activeElement && document.activeElement.id)); }
    if (order.join(",") !== "steps,step-ms,start") throw new Error(`Tab order from the top is ${JSON.stringify(order)}, expected steps, step-ms, start`);
  });

  // 40 × 100 ms: long enough that the Cancel click lands while it runs, even on a loaded machine.
  const first = await step("start a job from the form (40 steps × 100 ms)", () => startJobFromForm(page, 40, 100));
  log(`     job ${first}`);

  await step("its progress bar advances", async () => {
    const seen = await until(`job ${first} on the page with done > 0`, async () => {
      const j = await jobOnPage(page, first);
      return { ok: !!j && j.value > 0 && j.max === 40 && j.status === "running", seen: j };
    });
    if (!seen.labelled) throw new Error("the progress bar has no accessible label");
    if (!seen.cancelButton) throw new Error("a running job has no Cancel button");
  });

  await step("click its Cancel button", async () => {
    const answer = page.waitForResponse((r) => r.request().method() === "DELETE" && r.url().endsWith("/jobs/" + encodeURIComponent(first)))
      .catch(() => { throw new Error(`the click sent no DELETE /jobs/${first} within ${WAIT_MS} ms`); });
    await page.click(`#jobs [data-job-id="${first}"] button[data-action="cancel"]`);
    const res = await answer;
    const body = await res.json().catch(() => null);
    if (res.status() !== 200 || !body || body.status !== "cancelled") throw new Error(`DELETE /jobs/${first} answered ${res.status()} ${JSON.stringify(body)}, expected 200 {"status":"cancelled"}`);
  });

  await step("the page shows cancelled, reason manual", async () => {
    const j = await until(`job ${first} shown as cancelled with reason manual`, async () => {
      const j = await jobOnPage(page, first);
      return { ok: !!j && j.status === "cancelled" && j.reason === "manual" && !j.cancelButton, seen: j };
    });
    if (!(j.value > 0 && j.value < 40)) throw new Error(`a job cancelled part way should show a partial bar, shows ${j.value}/${j.max}`);
    if (!/\d/.test(j.duration)) throw new Error(`no duration shown for the cancelled job: ${JSON.stringify(j.duration)}`);
    const server = await getJson(`${base}/jobs/${first}`);
    if (server.status !== 200 || server.body.status !== "cancelled" || server.body.reason !== "manual") throw new Error(`GET /jobs/${first} disagrees: ${server.status} ${JSON.stringify(server.body)}`);
  });

  const second = await step("start a second job with the keyboard (5 steps × 20 ms)", () => startJobFromForm(page, 5, 20, { keyboard: true }));
  log(`     job ${second}`);

  await step("it runs to completed with a full bar", async () => {
    const j = await until(`job ${second} shown as completed with value == max == 5`, async () => {
      const j = await jobOnPage(page, second);
      return { ok: !!j && j.status === "completed" && j.value === 5 && j.max === 5, seen: j };
    });
    if (j.cancelButton) throw new Error("a completed job still has a Cancel button");
    if (j.reason) throw new Error(`a completed job shows a reason: ${j.reason}`);
    if (!/\d/.test(j.duration)) throw new Error(`no duration shown for the completed job: ${JSON.stringify(j.duration)}`);
  });

  await step("after a reload, finished jobs show no Cancel button", async () => {
    await page.reload({ waitUntil: "load" });
    await until("the reloaded page to connect", async () => ({ ok: (await page.textContent("#conn")) === "live", seen: await page.textContent("#conn") }));
    for (const [id, status] of [[first, "cancelled"], [second, "completed"]]) {
      const j = await until(`job ${id} on the reloaded page`, async () => {
        const j = await jobOnPage(page, id);
        return { ok: !!j && j.status === status, seen: j };
      });
      if (j.cancelButton) throw new Error(`the ${status} job ${id} has a Cancel button after a reload`);
    }
  });

  // A client of ROUTE appears on the page as a live KIND, and vanishes once the client leaves.
  async function liveWhileConnected(route, kind) {
    const req = http.get(base + route, (res) => res.resume());
    req.on("error", () => {});   // destroyed on purpose below
    try {
      await until(`a live ${kind} on the page while GET ${route} is open`, async () => {
        const n = await page.$$eval(`#live [data-op-kind="${kind}"]`, (l) => l.length);
        return { ok: n > 0, seen: `${n} live ${kind}(s) shown` };
      });
    } finally { req.destroy(); }
    await until(`the live ${kind} to vanish after the client of GET ${route} left`, async () => {
      const n = await page.$$eval(`#live [data-op-kind="${kind}"]`, (l) => l.length);
      return { ok: n === 0, seen: `${n} live ${kind}(s) shown` };
    });
  }
  await step("a request appears live and vanishes when its client disconnects",
    () => liveWhileConnected("/process?steps=400&step_ms=50", "request"));
  await step("a stream (SSE) appears live and vanishes when its client disconnects",
    () => liveWhileConnected("/events?interval_ms=100", "stream"));

  await step("a server error is shown on the page (POST /jobs answered 429)", async () => {
    // The server's own limit depends on its configuration; a routed answer makes the step exact.
    await page.route("**/jobs", (route) => route.request().method() === "POST"
      ? route.fulfill({ status: 429, contentType: "application/json", body: JSON.stringify({ error: "too many jobs" }) })
      : route.continue());
    allowedConsole = [/status of 429/];
    try {
      await page.click("#start");
      await until("the status line to show the server's error", async () => {
        const s = await page.evaluate(() => ({ text: document.getElementById("status-line").textContent, kind: document.getElementById("status-line").dataset.kind }));
        return { ok: s.kind === "error" && /too many jobs/.test(s.text) && /429/.test(s.text), seen: s };
      });
      const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
      if (focused !== "start") throw new Error(`after the click, focus is on ${JSON.stringify(focused)}, not on the Start button`);
    } finally { await page.unroute("**/jobs"); allowedConsole = []; }
  });

  await step("invalid input is explained on the page and not sent", async () => {
    let posted = false;
    const onRequest = (r) => { if (r.method() === "POST") posted = true; };
    page.on("request", onRequest);
    try {
      await page.fill("#steps", "0");
      await page.focus("#steps");
      await page.keyboard.press("Enter");
      await until("the status line to explain the bad Steps value", async () => {
        const s = await page.evaluate(() => ({ text: document.getElementById("status-line").textContent, invalid: document.getElementById("steps").getAttribute("aria-invalid") }));
        return { ok: /Steps must be/.test(s.text) && s.invalid === "true", seen: s };
      });
      await sleep(200);
      if (posted) throw new Error("the form sent a POST for steps = 0");
    } finally { page.off("request", onRequest); }
  });

  await step("readable at 400 px: no horizontal scroll", async () => {
    await page.setViewportSize({ width: 400, height: 800 });
    await sleep(300);
    const m = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    if (m.scroll > m.client) throw new Error(`at 400 px the page is ${m.scroll} px wide (scrolls sideways)`);
    const tiny = await page.evaluate(() => [...document.querySelectorAll("body *")].filter((e) => e.offsetParent && e.childNodes.length && [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()) && parseFloat(getComputedStyle(e).fontSize) < 11).map((e) => e.tagName));
    if (tiny.length) throw new Error(`text smaller than 11 px at 400 px: ${tiny.join(", ")}`);
    if (ARTIFACTS) { mkdirSync(ARTIFACTS, { recursive: true }); await page.screenshot({ path: join(ARTIFACTS, "dashboard-400px.png"), fullPage: true }); }
    await page.setViewportSize({ width: 1100, height: 760 });
  });

  const third = await step("start a long job for the screenshot", () => startJobFromForm(page, 300, 100));

  await step("screenshot with a running and a cancelled job", async () => {
    await until(`job ${third} running with done >= 30`, async () => {
      const j = await jobOnPage(page, third);
      return { ok: !!j && j.status === "running" && j.value >= 30, seen: j };
    }, 20_000);
    // A live request and a live stream in the picture too; closed again after it.
    const clients = ["/process?steps=400&step_ms=50", "/events?interval_ms=100"].map((route) => {
      const req = http.get(base + route, (res) => res.resume());
      req.on("error", () => {});
      return req;
    });
    try {
      await until("a live request and a live stream on the page", async () => {
        const kinds = await page.$$eval("#live [data-op-kind]", (l) => l.map((e) => e.dataset.opKind));
        return { ok: kinds.includes("request") && kinds.includes("stream"), seen: kinds };
      });
    } catch (e) { clients.forEach((c) => c.destroy()); throw e; }
    const statuses = await page.$$eval("#jobs [data-job-id]", (l) => l.map((e) => e.dataset.status));
    if (!statuses.includes("running") || !statuses.includes("cancelled")) throw new Error(`jobs on the page: ${statuses.join(", ")}`);
    await page.evaluate(() => { document.activeElement && document.activeElement.blur(); });
    if (SCREENSHOT) {
      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      log(`     saved ${SCREENSHOT}`);
    }
    clients.forEach((c) => c.destroy());
  });

  await step("cancel the long job with the keyboard; focus stays on its item", async () => {
    await page.focus(`#jobs [data-job-id="${third}"] button[data-action="cancel"]`);
    await page.keyboard.press("Enter");
    await until(`job ${third} shown as cancelled with reason manual`, async () => {
      const j = await jobOnPage(page, third);
      return { ok: !!j && j.status === "cancelled" && j.reason === "manual", seen: j };
    });
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.closest("[data-job-id]")?.dataset.jobId);
    if (focused !== third) throw new Error(`after its Cancel button went away, focus is on ${JSON.stringify(await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 80)))}, not on the job's item`);
  });

  await step("no console errors or page errors during the run", async () => {
    if (consoleProblems.length) throw new Error(consoleProblems.join("\n"));
  });

  await step("close the browser", async () => { await browser.close(); browser = null; });

  await step("SIGTERM stops the server with exit code 0", async () => {
    const exited = await stopServer();
    if (exited.code !== 0) throw new Error(`the server exited with code ${exited.code}, signal ${exited.signal}`);
  });

  cleanup();
  console.log(`dashboard e2e: all ${steps.length} steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`dashboard e2e: ${steps.length} passed, 0 failed`);
}

function cleanup() {
  if (profile) { try { rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ } }
}

let failing = false;
async function fail(err) {
  if (failing) return;
  failing = true;
  console.error(`\nFAILED at step "${current}": ${err && err.message ? err.message : err}`);
  if (consoleProblems.length && current !== "no console errors or page errors during the run") console.error(`console problems so far:\n  ${consoleProblems.join("\n  ")}`);
  if (ARTIFACTS && page) {
    try { mkdirSync(ARTIFACTS, { recursive: true }); await page.screenshot({ path: join(ARTIFACTS, "failure.png"), fullPage: true, timeout: 5000 }); console.error(`page screenshot: ${join(ARTIFACTS, "failure.png")}`); } catch { /* page gone */ }
  }
  if (serverOutput.length) {
    console.error(`last server output:\n  ${serverOutput.slice(-40).join("\n  ")}`);
    if (ARTIFACTS) { try { writeFileSync(join(ARTIFACTS, "server.log"), serverOutput.join("\n") + "\n"); } catch { /* best effort */ } }
  }
  try { if (browser) await Promise.race([browser.close(), sleep(5000)]); } catch { /* already gone */ }
  try { await stopServer(); } catch { /* reported above if it matters */ }
  if (server && !server.exited) server.child.kill("SIGKILL");
  cleanup();
  console.error(`dashboard e2e: ${steps.length} steps passed, then "${current}" failed`);
  console.log(`dashboard e2e: ${steps.length} passed, 1 failed`);
  process.exit(1);
}

process.on("SIGINT", () => fail(new Error("interrupted")));
process.on("SIGTERM", () => fail(new Error("terminated")));
main().catch(fail);
