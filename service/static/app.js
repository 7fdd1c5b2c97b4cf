/* scratch-serve's page: calls the public API only (/models, /predict/{arch}, /parity) and shows both backends'
   answers side by side. Plain browser JavaScript, no build step, nothing loaded from elsewhere. Every DOM node
   is built with textContent (names and messages from the API are never parsed as HTML). */
"use strict";

const BACKENDS = [
  {name: "keras", title: "keras (TensorFlow)"},
  {name: "scratch", title: "scratch (NumPy engine)"},
];
const TOP_K = 5;
const state = {models: [], config: {max_body_bytes: 32 * 1024 * 1024}};

/* ------------------------------------------------------------------ small helpers */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
const $ = (id) => document.getElementById(id);
const pct = (p) => `${(100 * p).toFixed(1)} %`;
const fmtInt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "–");
const fmtNum = (x, digits = 4) => (typeof x === "number" ? x.toFixed(digits) : "–");
const fmtSci = (x) => (typeof x === "number" ? x.toExponential(2) : "–");
const fmtBytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

class ApiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

const STATUS_WORDS = {
  400: "The request was not understood", 404: "Not found", 413: "Too large",
  422: "Refused", 500: "The server failed", 503: "Unavailable",
};

/** fetch + JSON; an error answer becomes an ApiError whose message says it in words. */
async function api(path, options = {}) {
  const t0 = performance.now();
  let response;
  try {
    response = await fetch(path, {headers: {"Accept": "application/json"}, ...options});
  } catch (err) {
    throw new ApiError(`Could not reach the service (${err.message}). Is it still running?`, 0, "network");
  }
  const ms = performance.now() - t0;
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const e = body && body.error;
    const words = STATUS_WORDS[response.status] || `HTTP ${response.status}`;
    const detail = e && e.message ? e.message : (response.statusText || "no details");
    throw new ApiError(`${words} (HTTP ${response.status}${e && e.code ? `, ${e.code}` : ""}): ${detail}`,
                       response.status, e && e.code);
  }
  return {body, ms, status: response.status};
}

function showError(box, message) {
  box.textContent = message;
  box.hidden = !message;
}

/** One bar per class: name, bar, percentage; data-probability holds the API's exact number. */
function bars(classes, probs, k) {
  const order = probs.map((p, i) => i).sort((a, b) => probs[b] - probs[a]).slice(0, k);
  return el("ol", {class: "bars"}, order.map((i) => {
    const fill = el("div", {class: "bar-fill"});
    fill.style.width = `${Math.max(0, Math.min(1, probs[i])) * 100}%`;
    return el("li", {class: "bar-row", dataset: {cls: classes[i], probability: String(probs[i])}},
      el("span", {class: "bar-name", title: classes[i], text: classes[i]}),
      el("div", {class: "bar-track", role: "img", "aria-label": `${classes[i]}: ${pct(probs[i])}`}, fill),
      el("span", {class: "bar-value", text: pct(probs[i])}));
  }));
}

/** Both backends' predictions of one item: agreement and the largest probability difference. */
function agreementOf(results, index) {
  const preds = BACKENDS.map((b) => results[b.name] && results[b.name].body.predictions[index]);
  if (preds.some((p) => !p)) return {text: "Only one backend answered: no comparison.", cls: "disagree"};
  const [k, s] = preds;
  const maxDiff = Math.max(...k.probabilities.map((p, i) => Math.abs(p - s.probabilities[i])));
  if (k.label === s.label) {
    return {cls: "agree", agree: true, maxDiff,
            text: `Both backends agree: ${k.label}. Largest |Δp| over the classes: ${fmtSci(maxDiff)}.`};
  }
  return {cls: "disagree", agree: false, maxDiff,
          text: `The backends disagree: keras says ${k.label}, scratch says ${s.label} (largest |Δp| ${fmtSci(maxDiff)}).`};
}

/** Sends one body to /predict/{arch} on each backend in turn (one at a time: each latency is its own). */
async function predictBoth(arch, payload) {
  const results = {}, errors = {};
  for (const b of BACKENDS) {
    try {
      results[b.name] = await api(`/predict/${encodeURIComponent(arch)}?backend=${b.name}`, {
        method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify(payload)});
    } catch (err) {
      errors[b.name] = err;
    }
  }
  return {results, errors};
}

function backendColumn(b, results, errors, index, k) {
  const col = el("div", {class: `backend ${b.name}`, dataset: {backend: b.name}});
  col.append(el("h4", {text: b.title}));
  if (errors[b.name]) {
    col.append(el("p", {class: "error", role: "alert", text: errors[b.name].message}));
    return col;
  }
  const r = results[b.name], pred = r.body.predictions[index];
  col.append(el("p", {}, el("span", {class: "label", dataset: {role: "label"}, text: pred.label}),
                " ", el("span", {class: "latency", dataset: {role: "latency"},
                                  text: `${r.ms.toFixed(1)} ms round trip`})));
  col.append(bars(r.body.classes, pred.probabilities, k));
  return col;
}

/** The first error of a failed pair, when both failed the same way (so it is said once, not twice). */
function commonError(errors) {
  const msgs = BACKENDS.map((b) => errors[b.name] && errors[b.name].message);
  return msgs.every((m) => m && m === msgs[0]) ? msgs[0] : null;
}

/* ------------------------------------------------------------------ models */
function modelList(body) {
  const models = body && body.models;
  const list = Array.isArray(models) ? models : Object.entries(models || {}).map(([key, m]) => ({key, ...m}));
  return list.map((m) => ({...m, key: m.name || m.key || m.arch, arch: m.arch || m.name || m.key,
                           kind: m.input && m.input.kind}));
}

function modelLabel(m) {
  const version = m.version !== undefined && m.version !== null ? ` v${m.version}` : "";
  return `${m.name || m.key}${version}`;
}

function fillSelect(select, models) {
  select.replaceChildren(...models.map((m) => el("option", {value: m.key, text: modelLabel(m)})));
  select.disabled = models.length === 0;
}

/* ------------------------------------------------------------------ image */
async function fileToBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(new ApiError(`Could not read the file (${reader.error && reader.error.message}).`));
    reader.readAsDataURL(blob);
  });
}

async function classifyImage(blob, name) {
  const errorBox = $("image-error"), result = $("image-result");
  showError(errorBox, "");
  const arch = $("image-model").value;
  if (!arch) { showError(errorBox, "No image model is loaded."); return; }
  if (!blob.size) { showError(errorBox, `The file ${name} is empty.`); result.hidden = true; return; }
  const encoded = Math.ceil(blob.size / 3) * 4 + 64;  // base64 inside the JSON body
  if (encoded > state.config.max_body_bytes) {
    showError(errorBox, `Too large: ${name} is ${fmtBytes(blob.size)}, ${fmtBytes(encoded)} once base64-encoded; ` +
              `the service accepts requests up to ${fmtBytes(state.config.max_body_bytes)} (MAX_BODY_BYTES).`);
    result.hidden = true;
    return;
  }
  result.setAttribute("aria-busy", "true");
  document.body.dataset.imageState = "busy";
  try {
    const payload = {images: [await fileToBase64(blob)]};
    const {results, errors} = await predictBoth(arch, payload);
    const same = commonError(errors);
    if (same) { showError(errorBox, same); result.hidden = true; return; }
    const preview = $("image-preview");
    if (preview.dataset.url) URL.revokeObjectURL(preview.dataset.url);
    preview.dataset.url = URL.createObjectURL(blob);
    preview.src = preview.dataset.url;
    $("image-name").textContent = `${name} → ${arch}`;
    const agreement = agreementOf(results, 0);
    const line = $("image-agreement");
    line.textContent = agreement.text;
    line.className = `agreement ${agreement.cls}`;
    $("image-backends").replaceChildren(...BACKENDS.map((b) => backendColumn(b, results, errors, 0, TOP_K)));
    result.hidden = false;
  } catch (err) {
    showError(errorBox, err.message);
  } finally {
    result.removeAttribute("aria-busy");
    document.body.dataset.imageState = "done";
  }
}

function setUpImage(samples) {
  const input = $("image-file"), zone = $("drop-zone");
  input.addEventListener("change", () => { if (input.files[0]) classifyImage(input.files[0], input.files[0].name); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) classifyImage(file, file.name);
  });
  const list = $("samples");
  list.replaceChildren(...samples.map((s) => {
    const button = el("button", {type: "button", class: "sample", dataset: {label: s.label},
                                 "aria-label": `Sample image: ${s.label} (${s.origin})`},
      el("img", {src: `/ui/${s.file}`, alt: "", width: 48, height: 48}), el("span", {text: s.label}));
    button.addEventListener("click", async () => {
      try {
        const response = await fetch(`/ui/${s.file}`);
        if (!response.ok) throw new ApiError(`Could not load the sample ${s.file} (HTTP ${response.status}).`);
        await classifyImage(await response.blob(), `${s.origin} (sample)`);
      } catch (err) {
        showError($("image-error"), err.message);
      }
    });
    return button;
  }));
}

/* ------------------------------------------------------------------ text */
async function classifyTexts() {
  const errorBox = $("text-error"), result = $("text-result");
  showError(errorBox, "");
  const texts = $("text-input").value.split("\n").map((t) => t.trim()).filter((t) => t.length);
  if (!texts.length) {
    showError(errorBox, "Empty text: type or paste at least one sentence (one text per line), or pick an example.");
    result.hidden = true;
    return;
  }
  const arch = $("text-model").value;
  const button = $("text-submit");
  button.disabled = true;
  document.body.dataset.textState = "busy";
  try {
    const {results, errors} = await predictBoth(arch, {texts});
    const same = commonError(errors);
    if (same) { showError(errorBox, same); result.hidden = true; return; }
    result.replaceChildren(...texts.map((text, i) => {
      const agreement = agreementOf(results, i);
      return el("article", {class: "text-item", dataset: {index: i}},
        el("blockquote", {text}),
        el("p", {class: `agreement ${agreement.cls}`, text: agreement.text}),
        el("div", {class: "backends"}, BACKENDS.map((b) => backendColumn(b, results, errors, i, 3))));
    }));
    result.hidden = false;
  } finally {
    button.disabled = false;
    document.body.dataset.textState = "done";
  }
}

function setUpText() {
  const input = $("text-input");
  for (const example of document.querySelectorAll("button.example")) {
    example.addEventListener("click", () => {
      input.value = example.textContent;
      classifyTexts();
    });
  }
  $("text-form").addEventListener("submit", (e) => { e.preventDefault(); classifyTexts(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); classifyTexts(); }
  });
}

/* ------------------------------------------------------------------ model cards */
function metricsTable(test) {
  const rows = BACKENDS.filter((b) => test[b.name]).map((b) => el("tr", {},
    el("th", {scope: "row", text: b.name}),
    el("td", {text: fmtNum(test[b.name].accuracy)}), el("td", {text: fmtNum(test[b.name].macro_f1)})));
  const table = el("table", {},
    el("caption", {text: `Test metrics${test.n ? ` (${fmtInt(test.n)} items)` : ""}`}),
    el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "backend"}), el("th", {scope: "col", text: "accuracy"}),
                               el("th", {scope: "col", text: "macro-F1"}))),
    el("tbody", {}, rows));
  const extra = [];
  if (typeof test.agreement === "number") extra.push(`agreement ${pct(test.agreement)}`);
  if (typeof test.max_abs_prob_diff === "number") extra.push(`max |Δp| ${fmtSci(test.max_abs_prob_diff)}`);
  return [el("div", {class: "scroll"}, table), extra.length ? el("p", {class: "hint", text: extra.join(", ")}) : null];
}

function modelCard(m) {
  const spec = m.input || {};
  const facts = [
    ["input", spec.kind ? `${spec.kind}, shape [${(spec.shape || []).join(", ")}], ${spec.dtype}` +
                          (spec.sequence_length ? `, ${spec.sequence_length} tokens` : "") : "unknown"],
    ["request field", spec.request_field || "–"],
    ["classes", (m.classes || []).join(", ")],
    ["parameters", fmtInt(m.params)],
    ["backends", Object.entries(m.backends || {}).map(([b, s]) => `${b}: ${s.status}${s.reason ? ` (${s.reason})` : ""}`).join("; ")],
  ];
  if (m.state && m.state !== "ready") facts.unshift(["state", `${m.state}${m.reason ? `: ${m.reason}` : ""}`]);
  if (m.config_name) facts.push(["config", `${m.config_name}${m.seed !== undefined && m.seed !== null ? `, seed ${m.seed}` : ""}`]);
  if (m.version !== undefined && m.version !== null) facts.push(["version", String(m.version)]);
  const shas = Object.entries(m.weights_sha256 || {});
  const version = m.version !== undefined && m.version !== null ? `?version=${encodeURIComponent(m.version)}` : "";
  const hasFigure = Boolean((m.weights_sha256 || {})["loss.png"]);  // the export lists it with its checksum
  const img = hasFigure ? el("img", {class: "curves", src: `/ui/models/${encodeURIComponent(m.key)}/loss.png${version}`,
                                     loading: "lazy",
                                     alt: `Training curves of ${modelLabel(m)}: loss per epoch on the training and validation data`})
                        : null;
  const missing = el("p", {class: "hint", hidden: hasFigure, text: "No committed loss figure for this model."});
  if (img) img.addEventListener("error", () => { img.hidden = true; missing.hidden = false; });
  const test = m.metrics && m.metrics.test;
  return el("article", {class: "card", dataset: {model: m.key}, "aria-labelledby": `card-${m.key}`},
    el("h3", {id: `card-${m.key}`}, modelLabel(m), el("span", {class: "kind", text: spec.kind || m.state || "?"})),
    el("dl", {class: "facts"}, facts.map(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})])),
    el("details", {}, el("summary", {text: `sha256 of ${shas.length} files`}),
       el("dl", {class: "facts sha"}, shas.map(([f, h]) => [el("dt", {text: f}), el("dd", {}, el("code", {text: h}))]))),
    img, missing,
    test ? metricsTable(test) : el("p", {class: "hint", text: "No test metrics recorded in the manifest."}));
}

/* ------------------------------------------------------------------ parity */
function heatMap(title, classes, matrix) {
  const max = Math.max(1, ...matrix.map((row) => Math.max(...row)));
  const short = (c) => (c.length > 5 ? c.slice(0, 4) + "." : c);
  const head = el("tr", {}, el("th", {scope: "col", text: "true ↓ predicted →"}),
                  classes.map((c) => el("th", {scope: "col", title: c}, el("abbr", {title: c, text: short(c)}))));
  const rows = matrix.map((row, i) => el("tr", {}, el("th", {scope: "row", text: classes[i]}), row.map((count, j) => {
    const cell = el("td", {text: String(count), title: `true ${classes[i]}, predicted ${classes[j]}: ${count}`});
    const alpha = count / max;
    cell.style.backgroundColor = `rgba(24, 100, 171, ${alpha.toFixed(3)})`;
    if (alpha > 0.5) cell.style.color = "#fff";
    return cell;
  })));
  const caption = `${title}: confusion matrix (rows: true class, columns: predicted)`;
  return el("figure", {class: "matrix"}, el("figcaption", {text: caption}),
    el("div", {class: "scroll"},
       el("table", {class: "heat", dataset: {backend: title}, "aria-label": caption},
          el("thead", {}, head), el("tbody", {}, rows))));
}

function parityFacts(r) {
  return el("dl", {class: "facts"}, [
    ["items", `${fmtInt(r.n)} of the ${r.split} split`],
    ["agreement", pct(r.agreement)],
    ["max |Δp|", fmtSci(r.max_abs_prob_diff)],
    ["keras macro-F1", fmtNum(r.keras.macro_f1)],
    ["scratch macro-F1", fmtNum(r.scratch.macro_f1)],
    ["keras / scratch accuracy", `${fmtNum(r.keras.accuracy)} / ${fmtNum(r.scratch.accuracy)}`],
    ["computed", r.cached ? `from the cache (computed in ${r.computed_in_s} s)` : `in ${r.computed_in_s} s`],
  ].map(([k, v]) => [el("dt", {text: k}), el("dd", {dataset: {fact: k}, text: v})]));
}

async function runParity(m, panel, limit) {
  const body = panel.querySelector(".parity-body");
  const covered = state.config.parity_models;
  if (Array.isArray(covered) && !covered.includes(m.key)) {
    body.replaceChildren(el("p", {class: "hint", text: `No parity panel: /parity compares the backends on the ` +
      `project's own test splits, for the models ${covered.join(", ")}; ${modelLabel(m)} is not one of them.`}));
    panel.dataset.state = "skipped";
    return;
  }
  const missingBackends = BACKENDS.filter((b) => m.backends && m.backends[b.name] && m.backends[b.name].status === "unavailable");
  if (missingBackends.length) {
    const reasons = missingBackends.map((b) => `${b.name}: ${m.backends[b.name].reason || "unavailable"}`).join("; ");
    body.replaceChildren(el("p", {class: "error", role: "alert",
                                  text: `No parity for ${modelLabel(m)}: it needs both backends (${reasons}).`}));
    panel.dataset.state = "error";
    return;
  }
  const elapsed = el("span", {text: "0 s"});
  body.replaceChildren(el("div", {class: "progress", role: "status"},
    el("progress", {"aria-label": `Computing the parity of ${modelLabel(m)}`}),
    el("span", {}, "Computing on the server: both backends over the test split… ", elapsed)));
  panel.dataset.state = "running";
  const t0 = performance.now();
  const timer = setInterval(() => { elapsed.textContent = `${Math.round((performance.now() - t0) / 1000)} s`; }, 500);
  try {
    const query = new URLSearchParams({arch: m.key});
    if (limit) query.set("limit", limit);
    const {body: r} = await api(`/parity?${query}`);
    const classes = r.classes || m.classes || [];
    const parts = [parityFacts(r)];
    if (r.confusion_matrices) {
      parts.push(el("div", {class: "matrices"},
        BACKENDS.filter((b) => r.confusion_matrices[b.name]).map((b) => heatMap(b.name, classes, r.confusion_matrices[b.name]))));
    }
    body.replaceChildren(...parts);
    panel.dataset.state = "done";
  } catch (err) {
    const text = err.code === "data_unavailable"
      ? "Parity needs the test data, and the service has none: start it with DATA_DIR set to the data folder " +
        "(for example DATA_DIR=../shared/data python -m service).\n" + err.message
      : err.message;
    body.replaceChildren(el("p", {class: "error", role: "alert", text}));
    panel.dataset.state = "error";
  } finally {
    clearInterval(timer);
  }
}

async function runAllParity() {
  const button = $("parity-run");
  button.disabled = true;
  const limit = $("parity-limit").value;
  try {
    for (const m of state.models) {  // one at a time: the server computes them one after another anyway
      await runParity(m, document.querySelector(`.parity[data-model="${CSS.escape(m.key)}"]`), limit);
    }
  } finally {
    button.disabled = false;
  }
}

let parityListening = false;

/** One panel per model; computed at once unless ?parity=off (or not yet: models still loading). */
function setUpParity(run) {
  $("parity-panels").replaceChildren(...state.models.map((m) => el("article",
    {class: "card parity", dataset: {model: m.key}, "aria-labelledby": `parity-${m.key}`},
    el("h3", {id: `parity-${m.key}`}, modelLabel(m), el("span", {class: "kind", text: m.kind || m.state || "?"})),
    el("div", {class: "parity-body", "aria-live": "polite"}, el("p", {class: "hint", text: "Not computed yet."})))));
  const params = new URLSearchParams(location.search);
  if (!parityListening) {
    parityListening = true;
    $("parity-run").addEventListener("click", runAllParity);
    const wanted = params.get("parity_limit");
    if (wanted) {
      const select = $("parity-limit");
      if (![...select.options].some((o) => o.value === wanted)) select.append(el("option", {value: wanted, text: `the first ${wanted}`}));
      select.value = wanted;
    }
  }
  $("parity-run").disabled = false;
  if (run && params.get("parity") !== "off") runAllParity();
}

/* ------------------------------------------------------------------ start */
const isLoading = (m) => m.state === "loading" || Object.values(m.backends || {}).some((s) => s.status === "loading");

/** Selects, model cards and the status line from /models; polled while a model is still loading. */
async function showModels() {
  const status = $("status");
  const models = await api("/models");
  state.models = modelList(models.body);
  fillSelect($("image-model"), state.models.filter((m) => m.kind === "image"));
  fillSelect($("text-model"), state.models.filter((m) => m.kind === "text"));
  $("text-submit").disabled = $("text-model").disabled;
  $("model-cards").replaceChildren(...state.models.map(modelCard));
  const ready = state.models.filter((m) => Object.values(m.backends || {}).every((s) => s.status === "ready"));
  const loading = state.models.filter(isLoading);
  status.textContent = `${state.models.length} models, ${ready.length} with every backend ready` +
    (loading.length ? `; still loading: ${loading.map(modelLabel).join(", ")}…` : ".");
  return loading.length > 0;
}

async function start() {
  const status = $("status");
  try {
    const [config, samples] = await Promise.all([api("/ui/config.json"), api("/ui/samples/samples.json")]);
    state.config = config.body;
    setUpImage(samples.body.samples);
    setUpText();
    let loading = await showModels();
    setUpParity(!loading);
    const poll = async () => {
      try { loading = await showModels(); } catch (_) { loading = true; }
      if (loading) setTimeout(poll, 2000); else setUpParity(true);
    };
    if (loading) setTimeout(poll, 2000);
  } catch (err) {
    status.textContent = "";
    status.append(el("span", {class: "error", role: "alert", text: `The page could not start: ${err.message}`}));
  } finally {
    document.documentElement.dataset.ready = "true";
    performance.mark("ui-interactive");
  }
}

document.addEventListener("DOMContentLoaded", start);
