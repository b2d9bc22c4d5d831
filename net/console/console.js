// vidnode's web console: reads the gateway's state as server-sent events
// from /console/api/events (with fetch, since EventSource cannot send the
// API key) and draws it; buttons and the form post to /console/api/.
"use strict";

(() => {
  const keyName = "vidnode.apiKey";
  // The server sends a comment at least every 15 s; a stream silent for
  // longer than this is dead.
  const silenceLimitMs = 40000;
  const reconnectDelayMs = 1000;

  const byId = (id) => document.getElementById(id);
  let apiKey = sessionStorage.getItem(keyName) || "";
  let stream = null;
  let reconnectTimer = null;
  let lastNodes = "";
  let lastEndpoints = "";
  const rows = new Map();

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    if (apiKey) headers.Authorization = "Bearer " + apiKey;
    return headers;
  }

  function setConnection(state) {
    const badge = byId("connection");
    badge.dataset.state = state;
    badge.textContent = state;
  }

  function showFailure(text) {
    const box = byId("failure");
    box.hidden = !text;
    box.textContent = text || "";
  }

  // --- the API key ---------------------------------------------------------

  function askKey(message) {
    stopStream();
    setConnection("offline");
    byId("key-message").textContent = message;
    byId("key-input").value = "";
    const dialog = byId("key-dialog");
    if (!dialog.open) dialog.showModal();
    byId("key-input").focus();
  }

  byId("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = byId("key-input").value.trim();
    if (!apiKey) return;
    sessionStorage.setItem(keyName, apiKey);
    byId("key-dialog").close();
    byId("forget-key").hidden = false;
    connect();
  });

  byId("key-dialog").addEventListener("cancel", (event) => event.preventDefault());

  byId("forget-key").addEventListener("click", () => {
    apiKey = "";
    sessionStorage.removeItem(keyName);
    byId("forget-key").hidden = true;
    askKey("This console needs one of the gateway's API keys.");
  });

  function refused() {
    const hadKey = apiKey !== "";
    apiKey = "";
    sessionStorage.removeItem(keyName);
    byId("forget-key").hidden = true;
    askKey(hadKey ? "The gateway refused that key. Enter another."
                  : "This console needs one of the gateway's API keys.");
  }

  // --- the event stream ----------------------------------------------------

  function stopStream() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (stream) stream.abort();
    stream = null;
  }

  function scheduleReconnect() {
    setConnection("reconnecting");
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, reconnectDelayMs);
  }

  function dispatch(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return;
    const body = JSON.parse(data.join("\n"));
    if (name === "state") {
      showFailure("");
      render(body);
    } else if (name === "failure") {
      showFailure("The gateway cannot read the cluster's state: " + body.error);
    }
  }

  async function connect() {
    stopStream();
    const controller = new AbortController();
    stream = controller;
    let silence = null;
    const watch = () => {
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(), silenceLimitMs);
    };
    try {
      watch();
      const response = await fetch("/console/api/events", {
        headers: authHeaders({ Accept: "text/event-stream" }),
        signal: controller.signal,
        cache: "no-store",
      });
      if (response.status === 401) {
        clearTimeout(silence);
        refused();
        return;
      }
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        showFailure("The console's stream failed: " + (body.error || response.status));
        throw new Error("status " + response.status);
      }
      setConnection("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        watch();
        buffer += value.replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (stream !== controller) return;
    } finally {
      clearTimeout(silence);
    }
    if (stream === controller) scheduleReconnect();
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: body === undefined ? "" : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401) {
      refused();
      throw new Error("the API key was refused");
    }
    if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
    return answer;
  }

  // --- formatting ----------------------------------------------------------

  function gib(bytes) {
    return (bytes / 1073741824).toFixed(1);
  }

  function clock(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleTimeString([], { hour12: false });
  }

  function seconds(value) {
    if (!value) return "0 s";
    return value < 10 ? value.toFixed(1) + " s" : Math.round(value) + " s";
  }

  function progressBar(label) {
    const bar = element("div", "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-label", label);
    bar.setAttribute("aria-valuemin", "0");
    return bar;
  }

  function meter(label, used, total, text) {
    const box = element("div", "meter");
    box.append(element("span", "", label + " " + text));
    const bar = progressBar(label);
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(used));
    const fill = element("span");
    const share = total > 0 ? Math.min(1, used / total) : 0;
    fill.style.width = (share * 100).toFixed(1) + "%";
    if (share >= 1) bar.classList.add("full");
    bar.append(fill);
    box.append(bar);
    return box;
  }

  function badge(state) {
    const node = element("span", "badge", state.replace("_", " "));
    node.dataset.state = state;
    return node;
  }

  // --- drawing -------------------------------------------------------------

  function renderNodes(devices) {
    const text = JSON.stringify(devices);
    if (text === lastNodes) return;
    lastNodes = text;
    const box = byId("nodes");
    box.replaceChildren();
    if (devices.length === 0) {
      box.append(element("p", "empty", "No devices yet."));
      return;
    }
    const nodes = new Map();
    for (const device of devices) {
      if (!nodes.has(device.node)) nodes.set(device.node, []);
      nodes.get(device.node).push(device);
    }
    for (const [name, list] of nodes) {
      const card = element("div", "node");
      card.dataset.node = name;
      card.append(element("h3", "", name || "(this node)"));
      for (const device of list) {
        const row = element("div", "device");
        row.dataset.device = device.device;
        row.append(element("span", "name", device.device));
        row.append(badge(device.state));
        row.append(meter("slots", device.slots_in_use, device.slots,
                         device.slots_in_use + " / " + device.slots));
        row.append(meter("memory", device.memory_reserved_bytes, device.memory_bytes,
                         gib(device.memory_reserved_bytes) + " / " + gib(device.memory_bytes) + " GiB"));
        const detail = element("div", "detail");
        for (const model of device.models) {
          const chip = element("span", model.loaded ? "chip" : "chip unloaded", model.model);
          chip.title = model.loaded ? "loaded (" + model.loads + " loads)" : "not loaded";
          detail.append(chip);
        }
        if (device.running.length > 0)
          detail.append(" running " + device.running.map((id) => "#" + id).join(" "));
        if (device.restarts > 0) detail.append(" · " + device.restarts + " restarts");
        if (device.last_error) detail.append(" · last error: " + device.last_error);
        if (detail.childNodes.length > 0) row.append(detail);
        card.append(row);
      }
      box.append(card);
    }
  }

  function renderQueue(jobs) {
    const box = byId("queue");
    const levels = new Map();
    for (const job of jobs) {
      if (job.state !== "queued") continue;
      if (!levels.has(job.priority)) levels.set(job.priority, []);
      levels.get(job.priority).push(job.id);
    }
    box.replaceChildren();
    if (levels.size === 0) {
      box.append(element("p", "empty", "Nothing queued."));
      return;
    }
    for (const priority of [...levels.keys()].sort((a, b) => b - a)) {
      const ids = levels.get(priority);
      const line = element("div", "priority");
      line.dataset.priority = priority;
      line.append(element("span", "level", "priority " + priority));
      line.append(element("span", "", ids.length + ": " + ids.map((id) => "#" + id).join(" ")));
      box.append(line);
    }
  }

  function renderEndpoints(endpoints) {
    const text = JSON.stringify(endpoints);
    if (text === lastEndpoints) return;
    lastEndpoints = text;
    const select = byId("submit-endpoint");
    const chosen = select.value;
    select.replaceChildren();
    for (const endpoint of endpoints) {
      const option = element("option", "", endpoint.id + " (" + endpoint.model + ")");
      option.value = endpoint.id;
      select.append(option);
    }
    if (chosen) select.value = chosen;
  }

  async function act(job, action, button) {
    button.disabled = true;
    const row = rows.get(job);
    try {
      await post("/console/api/jobs/" + job + "/" + action);
      row.note.textContent = "";
    } catch (error) {
      row.note.textContent = action + " failed: " + error.message;
    } finally {
      button.disabled = false;
    }
  }

  function makeRow(id) {
    const main = element("tr");
    main.dataset.jobId = id;
    const cells = {};
    for (const name of ["id", "endpoint", "model", "state", "attempts", "progress",
                        "device", "times", "actions"]) {
      cells[name] = element("td", "col-" + name);
      main.append(cells[name]);
    }
    cells.id.textContent = "#" + id;
    const progressText = element("div", "meter");
    const bar = progressBar("job " + id);
    const fill = element("span");
    bar.append(fill);
    cells.progress.append(progressText, bar);
    const cancel = element("button", "danger cancel", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => act(id, "cancel", cancel));
    const retry = element("button", "secondary retry", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => act(id, "retry", retry));
    cells.actions.append(cancel, retry);
    const detail = element("tr", "detail");
    detail.dataset.jobDetail = id;
    const wide = element("td");
    wide.colSpan = 9;
    const error = element("div", "error");
    const note = element("div", "note");
    const media = element("div", "media");
    wide.append(error, note, media);
    detail.append(wide);
    return { main, detail, cells, progressText, bar, fill, cancel, retry, error, note, media,
             video: null };
  }

  // For a gateway whose job results do not carry their endpoint: the
  // endpoints serving the job's model.
  function endpointsOf(model) {
    const names = JSON.parse(lastEndpoints || "[]")
      .filter((endpoint) => endpoint.model === model)
      .map((endpoint) => endpoint.id);
    return names.length > 0 ? names.join(", ") : "—";
  }

  function updateRow(row, job) {
    const c = row.cells;
    c.endpoint.textContent = job.endpoint !== undefined ? job.endpoint || "—"
                                                        : endpointsOf(job.model);
    c.model.textContent = job.model;
    if (c.state.dataset.state !== job.state) {
      c.state.dataset.state = job.state;
      c.state.replaceChildren(badge(job.state));
    }
    c.attempts.textContent = job.attempts;
    row.progressText.textContent = job.steps > 0 ? job.step + " / " + job.steps : "—";
    const share = job.steps > 0 ? job.step / job.steps : 0;
    row.fill.style.width = (share * 100).toFixed(1) + "%";
    row.bar.setAttribute("aria-valuemax", String(job.steps));
    row.bar.setAttribute("aria-valuenow", String(job.step));
    c.device.textContent = job.device ? job.device + (job.node ? " @ " + job.node : "") : "";
    const times = ["accepted " + clock(job.accepted_at)];
    if (job.started_at) times.push("started " + clock(job.started_at));
    if (job.finished_at) times.push("finished " + clock(job.finished_at));
    let ran = job.run_time_s;
    if (job.state === "running" && job.started_at)
      ran = Math.max(ran, (Date.now() - Date.parse(job.started_at)) / 1000);
    times.push("queued " + seconds(job.queue_time_s) + ", ran " + seconds(ran));
    c.times.replaceChildren();
    times.forEach((line, i) => {
      if (i > 0) c.times.append(element("br"));
      c.times.append(line);
    });
    row.cancel.hidden = !(job.state === "queued" || job.state === "running");
    row.retry.hidden = !(job.state === "failed" || job.state === "timed_out");
    row.error.textContent = job.error ? job.error.message : "";
    row.error.dataset.state = job.state;
    if (job.video_url) {
      if (!row.video) {
        row.video = element("video");
        row.video.controls = true;
        row.video.preload = "auto";
        row.video.muted = true;
        row.media.replaceChildren(row.video);
      }
      if (row.video.getAttribute("src") !== job.video_url) row.video.src = job.video_url;
    } else {
      if (row.video) row.video = null;
      row.media.textContent = job.state === "succeeded" && job.output ? "output: " + job.output : "";
    }
    row.detail.hidden = !row.error.textContent && !row.note.textContent
                        && !row.media.textContent && !row.video;
    row.main.classList.toggle("has-detail", !row.detail.hidden);
  }

  function renderJobs(jobs) {
    const body = document.querySelector("#jobs tbody");
    const seen = new Set();
    let at = 0;
    for (const job of jobs) {
      seen.add(job.id);
      let row = rows.get(job.id);
      if (!row) {
        row = makeRow(job.id);
        rows.set(job.id, row);
      }
      updateRow(row, job);
      for (const tr of [row.main, row.detail]) {
        // Moving a row would stop its video: only rows out of place move.
        if (body.children[at] !== tr) body.insertBefore(tr, body.children[at] || null);
        ++at;
      }
    }
    for (const [id, row] of rows) {
      if (seen.has(id)) continue;
      row.main.remove();
      row.detail.remove();
      rows.delete(id);
    }
    byId("no-jobs").hidden = jobs.length > 0;
  }

  function render(state) {
    renderEndpoints(state.endpoints);
    renderNodes(state.nodes);
    renderQueue(state.jobs);
    renderJobs(state.jobs);
  }

  // --- submitting ----------------------------------------------------------

  byId("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = byId("submit-result");
    const input = {};
    const prompt = byId("submit-prompt").value.trim();
    if (prompt) input.prompt = prompt;
    const steps = byId("submit-steps").value;
    if (steps !== "") input.num_inference_steps = Number(steps);
    result.textContent = "submitting…";
    try {
      const answer = await post("/console/api/submit",
                                { endpoint: byId("submit-endpoint").value, input });
      result.textContent = "Submitted job #" + answer.id;
    } catch (error) {
      result.textContent = "Refused: " + error.message;
    }
  });

  byId("forget-key").hidden = apiKey === "";
  connect();
})();
