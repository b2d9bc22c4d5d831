// The web console end to end, in Chromium driven by playwright-core: the
// page asks for the API key, shows the cluster's devices, follows a job
// from queued through running (with progress) to succeeded and plays its
// video, and cancels a running job with its button.
//
// Run by run_console_test.sh, which starts vidnode and sets:
//   CONSOLE_URL       the gateway's base URL (http://127.0.0.1:PORT)
//   CONSOLE_KEY       an API key in its key file
//   PLAYWRIGHT_CORE   the folder of the playwright-core package
//   CHROMIUM          the browser's executable
//   CONSOLE_SCREENSHOT (optional) where to save a screenshot of the console
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.CONSOLE_URL;
const key = process.env.CONSOLE_KEY;

// Small, real MP4s (the sim model's `video` option) with slow enough
// steps that the page sees every state.
const shortInput = {
  prompt: "a short console test",
  width: 64,
  height: 64,
  num_frames: 8,
  fps: 8,
  num_inference_steps: 6,
  step_ms: 300,
  video: 1,
};
// Runs out of memory at its second step on every attempt (after the first
// step's 700 ms, so that the page sees it run): it fails.
const failingInput = {
  prompt: "a failing console test",
  width: 64,
  height: 64,
  num_frames: 8,
  num_inference_steps: 3,
  step_ms: 700,
  fault: "oom-always@2",
};
const longInput = {
  prompt: "a long console test",
  width: 64,
  height: 64,
  num_frames: 8,
  num_inference_steps: 1000,
  step_ms: 200,
};

function log(text) {
  console.log(`[${new Date().toISOString().slice(11, 23)}] ${text}`);
}

async function run(input) {
  const response = await fetch(`${base}/v2/sim/run`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ input }),
  });
  const body = await response.text();
  assert.equal(response.status, 200, `/v2/sim/run answered ${response.status}: ${body}`);
  const answer = JSON.parse(body);
  assert.equal(answer.status, "IN_QUEUE", body);
  return String(answer.id);
}

async function cancelQuietly(id) {
  await fetch(`${base}/v2/sim/cancel/${id}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}` },
  }).catch(() => {});
}

// The state, step and steps the page shows for job `id` (null when absent).
function shown(page, id) {
  return page.evaluate((id) => {
    const row = document.querySelector(`tr[data-job-id="${id}"]`);
    if (!row) return null;
    const progress = row.querySelector("td.col-progress .meter").textContent;
    const match = /^(\d+) \/ (\d+)$/.exec(progress);
    return {
      state: row.querySelector("td.col-state").dataset.state,
      attempts: Number(row.querySelector("td.col-attempts").textContent),
      retry: !row.querySelector("button.retry").hidden,
      cancel: !row.querySelector("button.cancel").hidden,
      note: document.querySelector(`tr[data-job-detail="${id}"] .note`).textContent,
      step: match ? Number(match[1]) : 0,
      steps: match ? Number(match[2]) : 0,
    };
  }, id);
}

// Polls what the page shows for `id` until `done(view)`, recording every
// view seen, within `timeoutMs`.
async function follow(page, id, done, timeoutMs) {
  const seen = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await shown(page, id);
    if (view) {
      // Only an action the server refused leaves a note.
      if (view.note) throw new Error(`job ${id}: ${view.note}`);
      const last = seen[seen.length - 1];
      if (!last || last.state !== view.state || last.step !== view.step) seen.push(view);
      if (done(view)) return seen;
    }
    if (Date.now() > deadline)
      throw new Error(`job ${id}: timed out; the page showed ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const args = ["--disable-gpu", "--autoplay-policy=no-user-gesture-required"];
if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args,
});
const started = [];
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // Chromium logs every answer that is not 2xx, the expected 401s too.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource"))
      problems.push(`console: ${message.text()}`);
  });

  log("the page loads and asks for the key");
  await page.goto(base + "/");
  await page.locator("#key-dialog[open]").waitFor({ timeout: 10000 });
  assert.equal(await page.locator("#connection").textContent(), "offline");

  log("a wrong key is refused and asked for again");
  await page.fill("#key-input", "not-the-key");
  await page.click("#key-form button[type=submit]");
  await page.waitForFunction(
    () => document.querySelector("#key-message").textContent.includes("refused"),
    null, { timeout: 10000 });
  assert.ok(await page.locator("#key-dialog[open]").isVisible());

  log("given the key, it shows the cluster's devices");
  await page.fill("#key-input", key);
  await page.click("#key-form button[type=submit]");
  await page.locator("#connection[data-state=live]").waitFor({ timeout: 10000 });
  await page.locator('.device[data-device="sim:0"]').first().waitFor({ timeout: 10000 });
  await page.locator('.device[data-device="sim:1"]').first().waitFor({ timeout: 10000 });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("vidnode.apiKey")), key);
  assert.equal(await page.locator("#submit-endpoint option").count(), 1);

  log("two long jobs take both devices, a short one queues behind them");
  const first = await run(longInput);
  started.push(first);
  const second = await run(longInput);
  started.push(second);
  await follow(page, first, (v) => v.state === "running" && v.step > 0, 20000);
  await follow(page, second, (v) => v.state === "running" && v.step > 0, 20000);
  const short = await run(shortInput);
  started.push(short);
  await follow(page, short, (v) => v.state === "queued", 10000);
  assert.equal(await page.locator('#queue .priority').count(), 1);
  await page.locator(`.device[data-device="sim:0"] .bar`).first().waitFor();

  log(`the first long job (${first}) is cancelled with its button`);
  await page.click(`tr[data-job-id="${first}"] button.cancel`);
  await follow(page, first, (v) => v.state === "cancelled", 10000);
  assert.ok(await page.locator(`tr[data-job-id="${first}"] button.cancel`).isHidden());

  log(`the short job (${short}) runs with progress and succeeds`);
  const seen = await follow(page, short, (v) => v.state === "succeeded", 60000);
  log(`the page showed ${JSON.stringify(seen)}`);
  const order = ["queued", "running", "succeeded"];
  for (let i = 1; i < seen.length; ++i)
    assert.ok(order.indexOf(seen[i].state) >= order.indexOf(seen[i - 1].state),
              "the states went back");
  const running = seen.filter((v) => v.state === "running");
  assert.ok(running.some((v) => v.step > 0 && v.step < v.steps),
            "no progress between the first and the last step was shown");
  for (let i = 1; i < running.length; ++i)
    assert.ok(running[i].step >= running[i - 1].step, "progress went back");

  log("its video plays in the page");
  const video = page.locator(`tr[data-job-detail="${short}"] video`);
  await video.waitFor({ timeout: 10000 });
  await page.waitForFunction(
    (id) => {
      const v = document.querySelector(`tr[data-job-detail="${id}"] video`);
      return v && v.readyState >= 2;
    },
    short, { timeout: 20000 });
  const media = await video.evaluate((v) => ({
    width: v.videoWidth, height: v.videoHeight, duration: v.duration, error: v.error,
  }));
  log(`video: ${JSON.stringify(media)}`);
  assert.equal(media.error, null);
  assert.equal(media.width, 64);
  assert.ok(media.duration > 0);

  log("a failed job offers Retry and shows its error");
  const failing = await run(failingInput);
  started.push(failing);
  const failed = await follow(page, failing, (v) => v.state === "failed", 60000);
  const end = failed[failed.length - 1];
  assert.ok(end.retry && !end.cancel, `buttons of a failed job: ${JSON.stringify(end)}`);
  assert.ok(await page.locator(`tr[data-job-detail="${failing}"] .error`).textContent()
    .then((text) => text.includes("out_of_memory")));
  const succeeded = await shown(page, short);
  assert.ok(!succeeded.retry && !succeeded.cancel, "a succeeded job offers no button");

  log("a job submitted with the page's form appears");
  await page.fill("#submit-prompt", "from the form");
  await page.fill("#submit-steps", "2");
  await page.click("#submit-form button[type=submit]");
  await page.waitForFunction(
    () => /^Submitted job #/.test(document.querySelector("#submit-result").textContent),
    null, { timeout: 10000 });
  const formJob = (await page.locator("#submit-result").textContent()).replace(/^Submitted job #/, "");
  started.push(formJob);
  await follow(page, formJob, (v) => v.state === "succeeded", 30000);

  if (process.env.CONSOLE_SCREENSHOT) {
    await page.screenshot({ path: process.env.CONSOLE_SCREENSHOT, fullPage: true });
    log(`screenshot: ${process.env.CONSOLE_SCREENSHOT}`);
  }

  log(`Retry runs the failed job (${failing}) again`);
  await page.click(`tr[data-job-id="${failing}"] button.retry`);
  const again = await follow(page, failing, (v) => v.state === "running", 30000);
  log(`after Retry the page showed ${JSON.stringify(again)}`);
  await follow(page, failing, (v) => v.state === "failed", 60000);

  log(`the second long job (${second}) is cancelled with its button`);
  await page.click(`tr[data-job-id="${second}"] button.cancel`);
  await follow(page, second, (v) => v.state === "cancelled", 10000);

  assert.deepEqual(problems, []);
  log("PASSED");
} finally {
  for (const id of started) await cancelQuietly(id);
  await browser.close();
}
