// convscope explorer: plain JavaScript against the server's own /v1 API; nothing is loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, key: sessionStorage.getItem("convscope-key") || "", file: null, fm: null };
const DISPLAY = 224;

// ---- requests, loading states, errors ----------------------------------------------------------

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status === 401) {
    $("key-form").hidden = false;
    throw new Error("this server requires an API key: enter it at the top of the page");
  }
  if (!r.ok) {
    let message = `HTTP ${r.status}`, type = "";
    try { const b = await r.json(); message = b.error; type = b.type; } catch (e) { /* not JSON */ }
    const err = new Error(message);
    err.type = type; err.status = r.status;
    throw err;
  }
  return r;
}

async function busy(label, fn) {
  const status = $("status");
  status.textContent = label + "…";
  status.classList.add("busy");
  document.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    hideError();
    return await fn();
  } catch (e) {
    showError(e.message);
  } finally {
    status.textContent = "";
    status.classList.remove("busy");
    document.querySelectorAll("button").forEach((b) => (b.disabled = false));
  }
}

function showError(text) { const e = $("error"); e.textContent = text; e.hidden = false; }
function hideError() { $("error").hidden = true; }

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const fmt = (v, d = 4) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : v.toFixed(d));

// ---- the model ----------------------------------------------------------------------------------

async function loadModel() {
  await busy("loading the model", async () => {
    const m = await (await api("/v1/model")).json();
    state.model = m;
    $("key-form").hidden = true;
    $("model-name").textContent =
      `${m.model} · input ${m.input_size.join("×")} · ${m.classes.length} classes · ${m.task}`;
    $("arch-totals").textContent =
      `${m.total_params.toLocaleString()} parameters · ${m.total_macs.toLocaleString()} MACs · ` +
      `receptive field ${m.receptive_field}`;
    const body = $("arch").querySelector("tbody");
    body.replaceChildren();
    for (const layer of m.layers) {
      const tr = el("tr", { "data-layer": layer.name });
      for (const v of [layer.name, layer.type, layer.output_shape.join("×"), layer.params.toLocaleString(),
        layer.receptive_field ?? ""]) tr.appendChild(el("td", {}, String(v)));
      tr.addEventListener("click", () => selectLayer(layer.name));
      body.appendChild(tr);
    }
    const maps = m.layers.filter((l) => l.output_shape.length === 3).map((l) => l.name);
    fillSelect($("cam-layer"), [["", "default"], ...maps.map((n) => [n, n])]);
    fillSelect($("fm-layer"), maps.map((n) => [n, n]));
    fillSelect($("cam-class"), [["", "predicted"], ...m.classes.map((c, i) => [String(i), `${i}: ${c}`])]);
    const polarity = m.polarity === "light-on-dark" ? "light ink on dark (as the training data)" :
      "dark ink on light (as the training data)";
    $("draw-hint").textContent = `or draw below: ${polarity}`;
    clearCanvas();
  });
}

function fillSelect(select, options) {
  select.replaceChildren(...options.map(([v, t]) => { const o = el("option", { value: v }, t); return o; }));
}

function selectLayer(name) {
  document.querySelectorAll("#arch tr.selected").forEach((r) => r.classList.remove("selected"));
  const row = document.querySelector(`#arch tr[data-layer="${CSS.escape(name)}"]`);
  if (row) row.classList.add("selected");
  for (const id of ["fm-layer", "cam-layer"]) {
    if ([...$(id).options].some((o) => o.value === name)) $(id).value = name;
  }
}

// ---- input: upload or draw ----------------------------------------------------------------------

function inkColours() {
  const dark = state.model && state.model.polarity === "light-on-dark";
  return dark ? { paper: "#000", ink: "#fff" } : { paper: "#fff", ink: "#000" };
}

function clearCanvas() {
  const c = $("draw"), g = c.getContext("2d");
  g.fillStyle = inkColours().paper;
  g.fillRect(0, 0, c.width, c.height);
  state.file = null;
}

function setupDrawing() {
  const c = $("draw"), g = c.getContext("2d");
  let down = false, last = null;
  const pos = (e) => { const r = c.getBoundingClientRect(); return [(e.clientX - r.left) * c.width / r.width, (e.clientY - r.top) * c.height / r.height]; };
  c.addEventListener("pointerdown", (e) => { down = true; last = pos(e); state.file = null; stroke(last); });
  c.addEventListener("pointermove", (e) => { if (down) stroke(pos(e)); });
  window.addEventListener("pointerup", () => { if (down) { down = false; predict(); } });
  function stroke(p) {
    g.strokeStyle = inkColours().ink;
    g.lineWidth = Number($("brush").value);
    g.lineCap = "round";
    g.beginPath(); g.moveTo(last[0], last[1]); g.lineTo(p[0], p[1]); g.stroke();
    last = p;
  }
  $("clear").addEventListener("click", clearCanvas);
  $("file").addEventListener("change", async () => {
    const f = $("file").files[0];
    if (!f) return;
    state.file = f;
    try {
      const bitmap = await createImageBitmap(f);
      g.drawImage(bitmap, 0, 0, c.width, c.height);
    } catch (e) { /* the server says what is wrong with the file */ }
    predict();
  });
}

function inputBlob() {
  if (state.file) return Promise.resolve(state.file);
  return new Promise((resolve) => $("draw").toBlob(resolve, "image/png"));
}

async function form(fields) {
  const fd = new FormData();
  const blob = await inputBlob();
  fd.append("file", blob, state.file ? state.file.name : "drawing.png");
  for (const [k, v] of Object.entries(fields)) if (v !== "" && v !== undefined) fd.append(k, v);
  return fd;
}

// ---- predictions --------------------------------------------------------------------------------

async function predict() {
  if (!state.model) return;
  await busy("predicting", async () => {
    const k = state.model.classes.length;
    const r = await (await api(`/v1/predict?top_k=${k}`, { method: "POST", body: await form({}) })).json();
    const top = r.predictions[0].top;
    const bars = $("bars");
    bars.replaceChildren();
    for (const t of top.slice(0, 10)) {
      const row = el("div", { class: "bar", "data-probability": String(t.probability), "data-index": String(t.index) });
      const track = el("div", { class: "track" });
      const fill = el("div", { class: "fill" });
      fill.style.width = `${(100 * t.probability).toFixed(1)}%`;
      track.appendChild(fill);
      row.append(el("span", {}, t.label), track, el("span", {}, `${(100 * t.probability).toFixed(1)}%`));
      bars.appendChild(row);
    }
    for (const w of r.warnings) bars.appendChild(el("p", { class: "muted" }, w));
  });
}

// ---- Grad-CAM -----------------------------------------------------------------------------------

function jet(v) {
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [255 * r, 255 * g, 255 * b];
}

async function gradcam() {
  await busy("computing the heatmap", async () => {
    const fd = await form({ layer: $("cam-layer").value, class_index: $("cam-class").value, method: $("cam-method").value });
    const r = await (await api("/v1/explain/gradcam", { method: "POST", body: fd })).json();
    const heat = r.heatmap, h = heat.length, w = heat[0].length;
    const c = $("cam"), g = c.getContext("2d");
    g.imageSmoothingEnabled = false;
    g.drawImage($("draw"), 0, 0, c.width, c.height);
    const small = document.createElement("canvas");
    small.width = w; small.height = h;
    const sg = small.getContext("2d"), img = sg.createImageData(w, h);
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const [R, G, B] = jet(heat[i][j]), o = 4 * (i * w + j);
      img.data.set([R, G, B, 140], o);
    }
    sg.putImageData(img, 0, 0);
    g.imageSmoothingEnabled = true;
    g.drawImage(small, 0, 0, c.width, c.height);
    const box = r.strongest_cell;
    let boxText = "";
    if (box) {
      const [y0, x0, y1, x1] = box.box, sy = c.height / h, sx = c.width / w;
      g.strokeStyle = "#fff"; g.lineWidth = 3;
      g.strokeRect(x0 * sx, y0 * sy, (x1 - x0 + 1) * sx, (y1 - y0 + 1) * sy);
      g.strokeStyle = "#d00"; g.lineWidth = 1.5;
      g.strokeRect(x0 * sx, y0 * sy, (x1 - x0 + 1) * sx, (y1 - y0 + 1) * sy);
      boxText = ` · box: receptive field of ${box.layer} cell (${box.cell.join(", ")}), rows ${y0}–${y1}, cols ${x0}–${x1}`;
    }
    $("cam-info").textContent =
      `${r.method} at ${r.layer || "the input"} for class ${r.class} (${(100 * r.probability).toFixed(1)}%); ` +
      `predicted ${r.predicted} (${(100 * r.predicted_probability).toFixed(1)}%)${boxText}` +
      (heat.some((row) => row.some((v) => v > 0)) ? "" : " · the map is all zero: no positive evidence here");
  });
}

// ---- feature maps and filters -------------------------------------------------------------------

function drawMap(canvas, map, lo, hi) {
  const h = map.length, w = map[0].length;
  canvas.width = w; canvas.height = h;
  const g = canvas.getContext("2d"), img = g.createImageData(w, h), span = hi - lo || 1;
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    const v = Math.round(255 * (map[i][j] - lo) / span);
    img.data.set([v, v, v, 255], 4 * (i * w + j));
  }
  g.putImageData(img, 0, 0);
}

function extent(arrays) {
  let lo = Infinity, hi = -Infinity;
  for (const a of arrays) for (const row of a) for (const v of row) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

async function featureMaps() {
  const layer = $("fm-layer").value;
  await busy(`computing the feature maps of ${layer}`, async () => {
    const grid = $("fm-grid");
    let body;
    try {
      body = await (await api("/v1/explain/features", { method: "POST", body: await form({ layer }) })).json();
    } catch (e) {
      if (e.status !== 413) throw e;
      const png = await (await api("/v1/explain/features?format=png", { method: "POST", body: await form({ layer }) })).blob();
      grid.replaceChildren(el("img", { src: URL.createObjectURL(png), alt: `feature maps of ${layer}` }));
      $("fm-info").textContent = `${layer}: too large for the page's tiles; the server drew them`;
      return;
    }
    state.fm = body;
    const [lo, hi] = extent(body.values);
    grid.replaceChildren();
    body.values.forEach((map, c) => {
      const tile = el("div", { class: "tile", title: `channel ${c}` });
      const canvas = el("canvas");
      drawMap(canvas, map, lo, hi);
      tile.append(canvas, el("span", {}, `ch ${c}`));
      tile.addEventListener("click", () => enlarge(layer, c));
      grid.appendChild(tile);
    });
    const conv = state.model.conv_layers.includes(layer);
    $("fm-info").textContent = `${layer}: ${body.shape[0]} channels of ${body.shape[1]}×${body.shape[2]}, ` +
      `one grey scale shared by all tiles (${fmt(lo)} … ${fmt(hi)}). Click a tile to enlarge` +
      (conv ? "; click a pixel of the enlarged map for its arithmetic." : ".");
  });
}

function enlarge(layer, c) {
  const map = state.fm.values[c];
  const [lo, hi] = extent([map]);
  const canvas = el("canvas", { "aria-label": `channel ${c} of ${layer}` });
  drawMap(canvas, map, lo, hi);
  const zoom = $("zoom");
  zoom.replaceChildren(canvas, el("p", { class: "muted" }, `${layer}, channel ${c} (${fmt(lo)} … ${fmt(hi)})`));
  if (state.model.conv_layers.includes(layer)) {
    canvas.addEventListener("click", (e) => {
      const r = canvas.getBoundingClientRect();
      const x = Math.floor((e.clientX - r.left) * map[0].length / r.width);
      const y = Math.floor((e.clientY - r.top) * map.length / r.height);
      convTrace(layer, c, y, x);
    });
  }
  $("conv-panel").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

async function filters() {
  const layer = $("fm-layer").value;
  if (!state.model.conv_layers.includes(layer)) {
    showError(`${layer} has no filters: pick one of the conv layers (${state.model.conv_layers.join(", ")})`);
    return;
  }
  await busy(`loading the filters of ${layer}`, async () => {
    const body = await (await api(`/v1/filters?layer=${encodeURIComponent(layer)}`)).json();
    const grid = $("fm-grid");
    grid.replaceChildren();
    body.values.forEach((f, o) => {
      const mean = f[0].map((row, i) => row.map((_, j) => f.reduce((s, ch) => s + ch[i][j], 0) / f.length));
      const [lo, hi] = extent([mean]);
      const tile = el("div", { class: "tile filter", title: `filter ${o}` });
      const canvas = el("canvas");
      drawMap(canvas, mean, lo, hi);
      tile.append(canvas, el("span", {}, `f ${o}`));
      grid.appendChild(tile);
    });
    $("fm-info").textContent = `${layer}: ${body.shape[0]} filters of ${body.shape.slice(1).join("×")} ` +
      `(C_in×KH×KW); each tile is the mean over input channels, scaled to its own min … max.`;
  });
}

// ---- one conv value's arithmetic ----------------------------------------------------------------

function matrix(m) {
  const t = el("table", { class: "mat" });
  for (const row of m) {
    const tr = el("tr");
    for (const v of row) tr.appendChild(el("td", {}, fmt(v, 3)));
    t.appendChild(tr);
  }
  return t;
}

async function convTrace(layer, o, y, x) {
  await busy(`tracing ${layer}[${o}, ${y}, ${x}]`, async () => {
    const r = await (await api("/v1/explain/conv", { method: "POST", body: await form({ layer, at: `${o},${y},${x}` }) })).json();
    const p = r.trace.positions[0], out = $("conv-trace");
    out.replaceChildren();
    out.appendChild(el("p", {}, `${r.layer_repr}: out[${o}, ${y}, ${x}] = Σ over ${r.window.length} input ` +
      `channels of (window ⊙ filter) + bias`));
    const show = Math.min(r.window.length, 6);
    for (let c = 0; c < show; c++) {
      const box = el("div", { class: "chan" });
      box.append(el("div", {}, `channel ${c}: window`), matrix(r.window[c]), el("div", {}, "filter"),
        matrix(r.filter[c]), el("div", {}, `Σ window⊙filter = ${fmt(p.channels[c])}`));
      out.appendChild(box);
    }
    if (r.window.length > show) out.appendChild(el("p", { class: "muted" }, `… and ${r.window.length - show} more channels`));
    const sums = p.channels.map((v) => fmt(v)).join(" + ");
    out.appendChild(el("p", { class: "sum" }, `${sums} = ${fmt(p.sum, 6)}`));
    out.appendChild(el("p", { class: "sum" }, `${fmt(p.sum, 6)} + bias ${fmt(p.bias, 6)} = ${fmt(p.result, 6)} ` +
      `(the layer computed ${fmt(r.layer_output, 6)})`));
    const rf = r.receptive_field;
    if (rf) out.appendChild(el("p", { class: "muted" }, `receptive field in the image: ${rf.size.join("×")} pixels, ` +
      `rows ${rf.rows_in_image[0]}–${rf.rows_in_image[1] - 1}, cols ${rf.cols_in_image[0]}–${rf.cols_in_image[1] - 1}`));
  });
}

// ---- calculator ---------------------------------------------------------------------------------

async function calc(e) {
  e.preventDefault();
  await busy("calculating", async () => {
    const params = new URLSearchParams(new FormData($("calc")));
    const r = await (await api(`/v1/calc?${params}`)).json();
    const lines = [...(r.lines || [])];
    if (!r.exact) lines.unshift("warning: the window does not fit the input exactly (see the alternatives below)", "");
    $("calc-out").textContent = lines.join("\n");
  });
}

// ---- start --------------------------------------------------------------------------------------

window.addEventListener("DOMContentLoaded", () => {
  setupDrawing();
  $("predict").addEventListener("click", predict);
  $("cam-go").addEventListener("click", gradcam);
  $("fm-go").addEventListener("click", featureMaps);
  $("flt-go").addEventListener("click", filters);
  $("calc").addEventListener("submit", calc);
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("key").value;
    sessionStorage.setItem("convscope-key", state.key);
    loadModel();
  });
  loadModel();
});
