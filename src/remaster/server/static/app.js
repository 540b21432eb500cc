// The remaster page: log-in check, choices (presets and stages of the server), the list of images and its own
// queue in front of the server's, progress from the job API, results fetched as soon as ready, downloads.
// Talks only to this server (/v1, with the session cookie); the Content-Security-Policy allows nothing else.
"use strict";
(function () {
  const IN_FLIGHT = 3;          // jobs of this page on the server at once; the rest wait here
  const POLL_MS = 250;
  const THUMB = 160;            // thumbnails' width in pixels, decoded small, one at a time
  const CHOICE_KEY = "remaster.choice";
  const ACTIVE = ["uploading", "queued", "running", "cancelling", "fetching"];
  const FINISHED = ["done", "failed", "cancelled"];
  const $ = (id) => document.getElementById(id);

  const state = { presets: [], stages: [], items: [], nextId: 1, selected: null, viewer: null, polling: false,
                  thumbs: Promise.resolve(), retryAt: 0 };

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(message, hint, status, retryAfter) {
      super(message);
      this.hint = hint;
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { credentials: "same-origin", cache: "no-store", ...options });
    } catch (error) {
      throw new ApiError("the server does not answer", "is remaster serve still running? Start it again and open " +
                         "the address it prints", 0);
    }
    if (response.ok) return response;
    let message = `the server answered HTTP ${response.status}`;
    let hint = null;
    try {
      const body = await response.json();
      if (body.error) ({ message, hint } = body.error);
    } catch (error) { /* not JSON: keep the status */ }
    if (response.status === 401) {
      hint = "this page is not logged in (the server may have been restarted): open the address remaster serve " +
             "printed, which ends in ?token=…";
    }
    throw new ApiError(message, hint, response.status, response.headers.get("Retry-After"));
  }

  const getJSON = async (path, options) => (await api(path, options)).json();
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const announce = (text) => { $("announce").textContent = text; };

  // ------------------------------------------------------------------ starting

  async function start() {
    state.viewer = new window.Compare();
    let health;
    try {
      health = await getJSON("/v1/health");
    } catch (error) {
      showLogin(error);
      return;
    }
    if (location.hash === "#token-refused") history.replaceState(null, "", "/");
    $("server-line").textContent = `remaster ${health.version} · ${health.device}`;
    try {
      const [presets, stages] = await Promise.all([getJSON("/v1/presets"), getJSON("/v1/stages")]);
      state.presets = presets.presets;
      state.stages = stages.stages;
    } catch (error) {
      showLogin(error);
      return;
    }
    fillChoices();
    wire();
    $("app").hidden = false;
    refresh();
  }

  function showLogin(error) {
    $("login").hidden = false;
    const reason = $("login-reason");
    if (location.hash === "#token-refused") {
      reason.textContent = "The token in that address is not this server's (it changes each time the server " +
                           "starts). Open the address the running server printed.";
    } else if (error.status === 0) {
      reason.textContent = "The server does not answer: start remaster serve again and open the address it prints.";
    } else if (error.status !== 401) {
      reason.textContent = `The server refused this page: ${error.message}` + (error.hint ? ` (${error.hint})` : "");
    }
  }

  // ------------------------------------------------------------------ what to do

  function option(label, value, title, disabled) {
    const element = new Option(label, value);
    element.title = title || "";
    element.disabled = Boolean(disabled);
    return element;
  }

  function fillChoices() {
    const select = $("model");
    const presets = state.presets.filter((preset) => !preset.faces_of);
    const groups = [["Presets", presets.map((p) => option(p.ready ? p.label : `${p.label} (not ready)`,
                                                         `preset:${p.id}`, p.ready ? p.description : p.why, !p.ready))]];
    for (const [kind, label] of [["upscaler", "Upscalers"], ["filter", "Filters"]]) {
      groups.push([label, state.stages.filter((stage) => stage.kind === kind)
        .map((stage) => option(stage.name, `stage:${stage.name}`, stage.summary))]);
    }
    for (const [label, options] of groups) {
      if (!options.length) continue;
      const group = document.createElement("optgroup");
      group.label = label;
      group.append(...options);
      select.append(group);
    }
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(CHOICE_KEY) || "{}");
    } catch (error) { /* a damaged entry: start afresh */ }
    const wanted = [...select.options].find((o) => o.value === saved.model && !o.disabled);
    (wanted || [...select.options].find((o) => !o.disabled) || {}).selected = true;
    if (["2", "3", "4"].includes(saved.scale)) $("scale").value = saved.scale;
    $("faces").checked = Boolean(saved.faces);
    updateChoice();
  }

  function faceVariant(preset) {
    return preset && state.presets.find((p) => p.faces_of === preset.id);
  }

  function currentChoice() {
    const [kind, name] = $("model").value.split(/:(.*)/s);
    if (kind === "preset") {
      const preset = state.presets.find((p) => p.id === name);
      const faces = faceVariant(preset);
      const withFaces = Boolean(faces && faces.ready && $("faces").checked);
      return { pipeline: (withFaces ? faces : preset).pipeline, faces: withFaces, preset, stage: null };
    }
    const stage = state.stages.find((s) => s.name === name);
    if (!stage) return null;
    const scaled = stage.params.some((param) => param.name === "scale");
    return { pipeline: scaled ? `${stage.name}(scale=${$("scale").value})` : stage.name, faces: false, preset: null,
             stage };
  }

  function updateChoice() {
    const choice = currentChoice();
    if (!choice) return;
    const scaled = Boolean(choice.stage && choice.stage.params.some((param) => param.name === "scale"));
    $("scale-field").hidden = !scaled;
    const faces = faceVariant(choice.preset);
    $("faces").disabled = !(faces && faces.ready);
    $("faces-note").textContent = !choice.preset ? "Restoring faces comes with a preset." :
      !faces ? "This preset has no face variant." : faces.ready ? "" : faces.why;
    $("model-note").textContent = `${choice.preset ? choice.preset.description : choice.stage.summary} — runs ` +
                                  `${choice.pipeline}`;
    localStorage.setItem(CHOICE_KEY, JSON.stringify({ model: $("model").value, scale: $("scale").value,
                                                      faces: $("faces").checked }));
  }

  // ------------------------------------------------------------------ the list

  function wire() {
    for (const id of ["model", "scale", "faces"]) $(id).addEventListener("change", updateChoice);
    $("files").addEventListener("change", (event) => {
      addFiles(event.target.files);
      event.target.value = "";
    });
    const drop = $("drop");
    document.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
    document.addEventListener("dragleave", (event) => {
      if (!event.relatedTarget) drop.classList.remove("over");
    });
    document.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      addFiles(event.dataTransfer.files);
    });
    $("start").addEventListener("click", startWaiting);
    $("cancel-all").addEventListener("click", () => state.items.forEach(cancel));
    $("download-all").addEventListener("click", downloadAll);
    $("clear").addEventListener("click", () => state.items.filter((i) => FINISHED.includes(i.state)).forEach(remove));
    window.addEventListener("beforeunload", (event) => {
      if (state.items.some((item) => ACTIVE.includes(item.state) || item.state === "pending")) event.preventDefault();
    });
  }

  function addFiles(files) {
    for (const file of files) {
      const item = { id: state.nextId++, file, name: file.name || "image", state: "waiting", progress: 0 };
      item.el = renderItem(item);
      state.items.push(item);
      $("items").append(item.el);
      state.thumbs = state.thumbs.then(() => thumbnail(item));
    }
    announce(`${files.length} image${files.length === 1 ? "" : "s"} added`);
    refresh();
  }

  function button(label, action, cls) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = label;
    element.className = cls;
    element.addEventListener("click", action);
    return element;
  }

  function renderItem(item) {
    const li = document.createElement("li");
    li.className = "item";
    li.innerHTML = '<div class="thumb-box"><img class="thumb" alt=""></div><div class="meta"><span class="name">' +
      '</span><span class="detail muted"></span><progress max="1" value="0"></progress>' +
      '<p class="error" hidden></p></div><div class="item-actions"></div>';
    li.querySelector(".name").textContent = item.name;
    li.querySelector("progress").setAttribute("aria-label", `Progress of ${item.name}`);
    const download = document.createElement("a");
    download.className = "button download";
    download.textContent = "Download";
    download.setAttribute("aria-label", `Download the result of ${item.name}`);
    const compare = button("Compare", () => select(item), "compare");
    compare.setAttribute("aria-label", `Compare before and after for ${item.name}`);
    const stop = button("Cancel", () => cancel(item), "cancel");
    stop.setAttribute("aria-label", `Cancel ${item.name}`);
    const drop = button("Remove", () => remove(item), "remove");
    drop.setAttribute("aria-label", `Remove ${item.name} from the list`);
    li.querySelector(".item-actions").append(compare, download, stop, drop);
    return li;
  }

  async function thumbnail(item) {
    if (!item.el.isConnected) return;
    try {
      // Decoded at the thumbnail's size, one file at a time: 50 large photos do not hold 50 full bitmaps.
      const bitmap = await createImageBitmap(item.file, { resizeWidth: THUMB, resizeQuality: "medium" });
      const canvas = document.createElement("canvas");
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      bitmap.close();
      const blob = await new Promise((resolve) => canvas.toBlob(resolve));
      item.thumbUrl = URL.createObjectURL(blob);
      item.el.querySelector(".thumb").src = item.thumbUrl;
    } catch (error) {
      item.el.querySelector(".thumb-box").classList.add("no-thumb");  // the server will say what is wrong with it
    }
  }

  function size(dims) {
    return dims ? `${dims.width} × ${dims.height}` : "";
  }

  function describeRun(item) {
    const stages = (item.status.stages || []).map((s) => `${s.stage} (${s.device}, ${s.precision})`).join(" → ");
    const seconds = item.status.finished && item.status.started ? item.status.finished - item.status.started : null;
    return `${stages || item.pipeline}${seconds === null ? "" : ` · ${seconds.toFixed(1)} s`}`;
  }

  const WORDS = { waiting: "ready to start", pending: "waiting for its turn", uploading: "sending", queued:
                  "queued on the server", running: "running", cancelling: "cancelling", fetching: "fetching the result",
                  done: "done", failed: "failed", cancelled: "cancelled" };

  function updateItem(item) {
    const el = item.el;
    el.dataset.state = item.state;
    const status = item.status;
    let detail = WORDS[item.state];
    if (item.state === "running") detail += ` ${Math.round(item.progress * 100)} %`;
    if (status && status.input) detail = `${size(status.input)} → ${size(status.output)} · ${detail}`;
    if (item.state === "done") detail += ` · ${describeRun(item)}`;
    el.querySelector(".detail").textContent = detail;
    const progress = el.querySelector("progress");
    progress.value = item.state === "done" ? 1 : item.progress;
    progress.hidden = !ACTIVE.includes(item.state) && item.state !== "pending";
    const error = el.querySelector(".error");
    error.hidden = !item.error;
    if (item.error) error.textContent = item.error.message + (item.error.hint ? ` — ${item.error.hint}` : "");
    const done = item.state === "done";
    el.querySelector(".compare").hidden = !done;
    const download = el.querySelector(".download");
    download.hidden = !done;
    if (done) {
      download.href = item.resultUrl;
      download.download = outName(item);
    }
    el.querySelector(".cancel").hidden = FINISHED.includes(item.state) || item.state === "waiting";
    el.querySelector(".remove").hidden = !(FINISHED.includes(item.state) || item.state === "waiting");
    el.classList.toggle("selected", state.selected === item);
  }

  function refresh() {
    const count = (...states) => state.items.filter((item) => states.includes(item.state)).length;
    const waiting = count("waiting");
    $("start").disabled = waiting === 0;
    $("start").textContent = waiting ? `Remaster ${waiting} image${waiting === 1 ? "" : "s"}` : "Remaster";
    $("cancel-all").disabled = count("pending", ...ACTIVE) === 0;
    $("download-all").disabled = count("done") === 0;
    $("clear").disabled = count(...FINISHED) === 0;
    const parts = [["done", count("done")], ["failed", count("failed")], ["cancelled", count("cancelled")],
                   ["in progress", count("pending", ...ACTIVE)]].filter(([, n]) => n).map(([w, n]) => `${n} ${w}`);
    $("summary").textContent = parts.join(" · ");
  }

  function outName(item) {
    const base = item.name.replace(/\.[^.]*$/, "") || "image";
    const input = item.status && item.status.input;
    const output = item.status && item.status.output;
    const scale = input && output ? output.width / input.width : 1;
    let suffix = Math.abs(scale - 1) > 1e-6 ? `_x${Number(scale.toFixed(2))}` : "_remaster";
    if (item.faces) suffix += "_faces";
    return `${base}${suffix}.png`;
  }

  // ------------------------------------------------------------------ the queue

  function startWaiting() {
    const choice = currentChoice();
    if (!choice) return;
    for (const item of state.items.filter((i) => i.state === "waiting")) {
      Object.assign(item, { state: "pending", pipeline: choice.pipeline, faces: choice.faces, error: null });
      updateItem(item);
    }
    announce("started");
    pump();
  }

  function pump() {
    let free = IN_FLIGHT - state.items.filter((item) => ACTIVE.includes(item.state)).length;
    const wait = state.retryAt - Date.now();
    if (wait > 0) {
      setTimeout(pump, wait);
    } else {
      for (const item of state.items) {
        if (free <= 0) break;
        if (item.state === "pending") {
          free -= 1;
          submit(item);
        }
      }
    }
    refresh();
    if (!state.polling) poll();
  }

  async function submit(item) {
    item.state = "uploading";
    updateItem(item);
    const type = item.file.type.startsWith("image/") ? item.file.type : "application/octet-stream";
    try {
      const status = await getJSON("/v1/jobs", { method: "POST", body: item.file, headers: {
        "Content-Type": type, "X-Remaster-Options": JSON.stringify({ pipeline: item.pipeline }) } });
      item.job = status.id;
      if (item.state === "cancelled") {
        forget(item);
      } else {
        apply(item, status);
      }
    } catch (error) {
      if (error.status === 503 && item.state === "uploading") {  // the server's queue is full: wait, then again
        item.state = "pending";
        state.retryAt = Date.now() + 1000 * Math.max(1, Number(error.retryAfter) || 2);
      } else if (item.state !== "cancelled") {
        fail(item, error);
      }
    }
    updateItem(item);
    pump();
  }

  function apply(item, status) {
    item.status = status;
    item.progress = status.progress;
    if (["queued", "running", "cancelling"].includes(status.state)) item.state = status.state;
  }

  async function poll() {
    state.polling = true;
    for (;;) {
      const active = state.items.filter((item) => item.job && ["queued", "running", "cancelling"].includes(item.state));
      if (!active.length) break;
      await Promise.all(active.map(pollOne));
      await sleep(POLL_MS);
    }
    state.polling = false;
  }

  async function pollOne(item) {
    let status;
    try {
      status = await getJSON(`/v1/jobs/${item.job}`);
    } catch (error) {
      fail(item, error);
      return;
    }
    if (FINISHED.includes(item.state)) return;  // cancelled here meanwhile
    apply(item, status);
    if (status.state === "done") {
      await fetchResult(item);
    } else if (status.state === "failed") {
      fail(item, status.error || { message: "the job failed" });
      forget(item);
    } else if (status.state === "cancelled") {
      item.state = "cancelled";
      forget(item);
    }
    updateItem(item);
    pump();
  }

  async function fetchResult(item) {
    item.state = "fetching";
    updateItem(item);
    try {
      const blob = await (await api(`/v1/jobs/${item.job}/result`)).blob();
      item.resultUrl = URL.createObjectURL(blob);
      item.result = blob;
      item.state = "done";
      forget(item);  // the server keeps only a few results: this one is here now
      announce(`${item.name} is done`);
      if (!state.selected) select(item);
    } catch (error) {
      fail(item, error);
    }
  }

  function forget(item) {
    if (item.job) api(`/v1/jobs/${item.job}`, { method: "DELETE" }).catch(() => {});
  }

  function fail(item, error) {
    item.state = "failed";
    item.error = { message: error.message, hint: error.hint };
    announce(`${item.name} failed: ${error.message}`);
    updateItem(item);
  }

  async function cancel(item) {
    if (["waiting", "pending", "uploading"].includes(item.state)) {
      item.state = "cancelled";  // an upload under way is deleted on the server as soon as its job has an id
    } else if (["queued", "running"].includes(item.state)) {
      item.state = "cancelling";
      updateItem(item);
      try {
        apply(item, await getJSON(`/v1/jobs/${item.job}`, { method: "DELETE" }));
      } catch (error) {
        if (error.status !== 404) fail(item, error);
      }
      pump();
      return;
    }
    updateItem(item);
    refresh();
  }

  function remove(item) {
    if (!(FINISHED.includes(item.state) || item.state === "waiting")) return;
    item.state = "cancelled";
    for (const url of [item.thumbUrl, item.resultUrl, item.inputUrl]) if (url) URL.revokeObjectURL(url);
    item.el.remove();
    state.items = state.items.filter((other) => other !== item);
    if (state.selected === item) {
      state.selected = null;
      $("viewer").hidden = true;
    }
    refresh();
  }

  // ------------------------------------------------------------------ results

  function select(item) {
    const previous = state.selected;
    state.selected = item;
    if (previous) updateItem(previous);
    updateItem(item);
    item.inputUrl = item.inputUrl || URL.createObjectURL(item.file);
    $("viewer").hidden = false;
    const { input, output } = item.status;
    $("viewer-title").textContent = `Before and after: ${item.name}`;
    $("viewer-info").textContent = `before ${size(input)} (enlarged without smoothing) · after ${size(output)} · ` +
                                   describeRun(item);
    const link = $("viewer-download");
    link.href = item.resultUrl;
    link.download = outName(item);
    link.textContent = `Download ${outName(item)}`;
    state.viewer.show(item.inputUrl, item.resultUrl, output.width, output.height);
  }

  async function downloadAll() {
    const done = state.items.filter((item) => item.state === "done");
    const used = new Set();
    const files = done.map((item) => {
      let name = outName(item);
      for (let n = 2; used.has(name); n++) name = outName(item).replace(/\.png$/, ` (${n}).png`);
      used.add(name);
      return { name, blob: item.result };
    });
    const zip = await window.makeZip(files);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(zip);
    link.download = "remaster-results.zip";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
