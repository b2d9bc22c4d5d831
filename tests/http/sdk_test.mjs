// Runpod's own JS SDK (npm runpod-sdk 1.1.2) against a real vidnode HTTP
// gateway, with the SDK's calls unchanged. run_sdk_test.sh installs the SDK
// next to a copy of this file and passes BASE_URL (http://HOST:PORT/v2) and
// API_KEY. Exits non-zero with the failed check's message.

import runpodSdk from "runpod-sdk";

const baseUrl = process.env.BASE_URL;
const apiKey = process.env.API_KEY;
if (!baseUrl || !apiKey) {
  console.error("FAILED: BASE_URL and API_KEY must be set");
  process.exit(2);
}

const endpoint = runpodSdk(apiKey, { baseUrl }).endpoint("sim");
const terminal = ["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"];
const deadlineMs = 60000;

function check(condition, message, value) {
  if (!condition) {
    const shown = value === undefined ? "" : ": " + JSON.stringify(value);
    throw new Error(message + shown);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function pollStatus(id, done, what) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const status = await endpoint.status(id);
    if (done(status))
      return status;
    check(Date.now() < until, `${id} not ${what} within ${deadlineMs} ms`,
          status);
    await sleep(50);
  }
}

async function run(input) {
  const answer = await endpoint.run({ input });
  check(typeof answer.id === "string" && answer.id.length > 0,
        "run answered without an id", answer);
  check(answer.status === "IN_QUEUE", "run's status is not IN_QUEUE", answer);
  return answer.id;
}

async function checkVideo(output) {
  check(output && typeof output.video_url === "string",
        "output has no video_url", output);
  const response = await fetch(output.video_url);
  check(response.status === 200, `GET ${output.video_url} answered`,
        response.status);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const box = new TextDecoder().decode(bytes.subarray(4, 8));
  check(bytes.length > 8 && box === "ftyp",
        "the video is not an MP4 (no ftyp box at offset 4)",
        Array.from(bytes.subarray(0, 16)));
}

const checks = [];
const completedJobs = [];

checks.push(["run then status until COMPLETED, video_url is an MP4",
             async () => {
  const id = await run({ prompt: "a cat on a skateboard" });
  const status = await pollStatus(id, (s) => terminal.includes(s.status),
                                  "ended");
  check(status.status === "COMPLETED", "job did not complete", status);
  check(status.id === id, "status answered another id", status);
  check(Number.isInteger(status.delayTime) &&
          Number.isInteger(status.executionTime),
        "delayTime/executionTime are not integers", status);
  await checkVideo(status.output);
  completedJobs.push(id);
}]);

checks.push(["runSync", async () => {
  const result = await endpoint.runSync({ input: { prompt: "runsync" } });
  check(result.status === "COMPLETED", "runSync did not complete", result);
  check(result.completed === true && result.succeeded === true,
        "runSync's completed/succeeded flags", result);
  await checkVideo(result.output);
  completedJobs.push(result.id);
}]);

checks.push(["statusSync", async () => {
  const id = await run({ prompt: "statussync", step_ms: 200 });
  const until = Date.now() + deadlineMs;
  let status = await endpoint.statusSync(id);
  while (!terminal.includes(status.status)) {
    check(Date.now() < until, "statusSync never saw the job end", status);
    status = await endpoint.statusSync(id);
  }
  check(status.status === "COMPLETED", "statusSync: job did not complete",
        status);
  check(status.id === id, "statusSync answered another id", status);
  await checkVideo(status.output);
  completedJobs.push(id);
}]);

checks.push(["stream yields every step once, in order, then the output",
             async () => {
  const steps = 6;
  const id = await run(
      { prompt: "stream", num_inference_steps: steps, step_ms: 400 });
  const chunks = [];
  const until = Date.now() + deadlineMs;
  for await (const chunk of endpoint.stream(id)) {
    chunks.push(chunk);
    check(Date.now() < until, "stream did not end in time", chunks);
  }
  check(chunks.length === steps + 1,
        `expected ${steps} progress chunks and the output`, chunks);
  const progress = chunks.slice(0, steps).map((c) => c.output);
  progress.forEach((p, i) => {
    check(p && p.steps === steps, `chunk ${i} is not progress of ${steps}`,
          chunks);
    if (i > 0)
      check(p.step === progress[i - 1].step + 1,
            `chunk ${i} does not follow chunk ${i - 1}`, chunks);
  });
  check(progress[steps - 1].step - progress[0].step === steps - 1,
        "progress chunks are not every step", chunks);
  await checkVideo(chunks[steps].output);
  const status = await endpoint.status(id);
  check(status.status === "COMPLETED", "streamed job's status", status);
  completedJobs.push(id);
}]);

checks.push(["cancel of a running job", async () => {
  const id = await run(
      { prompt: "cancel me", num_inference_steps: 100, step_ms: 200 });
  await pollStatus(id, (s) => s.status === "IN_PROGRESS", "IN_PROGRESS");
  const answer = await endpoint.cancel(id);
  check(answer.id === id && answer.status === "CANCELLED",
        "cancel's answer", answer);
  const status = await pollStatus(id, (s) => terminal.includes(s.status),
                                  "ended");
  check(status.status === "CANCELLED", "cancelled job's status", status);
}]);

checks.push(["health counts what was done", async () => {
  const health = await endpoint.health();
  check(health.jobs && health.workers, "health's shape", health);
  const expected = { completed: completedJobs.length, failed: 0,
                     inProgress: 0, inQueue: 0, retried: 0 };
  for (const [key, value] of Object.entries(expected))
    check(health.jobs[key] === value, `health.jobs.${key} is not ${value}`,
          health);
  check(health.workers.idle + health.workers.running === 4,
        "health.workers does not count the 4 devices", health);
}]);

checks.push(["purgeQueue removes the queued jobs", async () => {
  const slow = { prompt: "slow", num_inference_steps: 100, step_ms: 200 };
  const running = [];
  for (let i = 0; i < 4; ++i)
    running.push(await run(slow));
  for (const id of running)
    await pollStatus(id, (s) => s.status === "IN_PROGRESS", "IN_PROGRESS");
  const queued = [];
  const n = 3;
  for (let i = 0; i < n; ++i)
    queued.push(await run(slow));
  for (const id of queued) {
    const status = await endpoint.status(id);
    check(status.status === "IN_QUEUE", "job behind 4 slow ones not queued",
          status);
  }
  const purged = await endpoint.purgeQueue();
  check(purged.removed === n && purged.status === "completed",
        `purgeQueue did not remove the ${n} queued jobs`, purged);
  for (const id of queued) {
    const status = await endpoint.status(id);
    check(status.status === "CANCELLED", "purged job's status", status);
  }
  for (const id of running) {
    const status = await endpoint.status(id);
    check(status.status === "IN_PROGRESS",
          "purgeQueue touched a running job", status);
  }
  const health = await endpoint.health();
  check(health.jobs.inQueue === 0 && health.jobs.inProgress === 4,
        "health after purgeQueue", health);
  for (const id of running)
    await endpoint.cancel(id);
}]);

let failed = 0;
for (const [name, body] of checks) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok: ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    ++failed;
    console.error(`FAILED: ${name}: ${err && err.stack ? err.stack : err}`);
  }
}
if (failed > 0) {
  console.error(`${failed} of ${checks.length} checks failed`);
  process.exit(1);
}
console.log(`all ${checks.length} checks passed`);
