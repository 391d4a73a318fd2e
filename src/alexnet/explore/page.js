// alexnet explore: the page. Plain JavaScript, no library, nothing fetched from elsewhere.
// Every text from the server is set with textContent (never parsed as HTML).
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};
const pct = (p) => (100 * p).toFixed(2) + "%";
const num = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toPrecision(5));
let info = null, current = null, offset = 0, occ = null, picked = null;

async function api(path, options) {
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function start() {
  info = await api("/api/info");
  $("net").textContent = `${info.model} · ${info.weights} · ${info.classes} classes · ${info.input}×${info.input} input`;
  $("prep").textContent = `Preprocessing from the weights' card: ${info.preprocessing}.`;
  $("filters-img").src = info.filters;
  $("filters-note").textContent = info.towers === 2
    ? "The paper's two GPUs each learned 48 of the 96 kernels: one tower's block on the left, the other's on the right."
    : "Each kernel scaled to its own range.";
  $("tower-note").textContent = info.towers === 2
    ? "Two towers: the left block of every layer is the first GPU's half of its channels, the right block the second's (§3.2)."
    : "";
  // occlusion squares of about 1/7, 1/5 and 1/4 of the side; steps of about 1/28, 1/14, 1/9
  const opts = (id, parts, chosen) => $(id).replaceChildren(...parts.map((f, i) =>
    el("option", { textContent: Math.max(1, Math.round(info.input / f)), selected: i === chosen })));
  opts("occ-size", [7, 5, 4], 1);
  opts("occ-stride", [28, 14, 9], 1);
  for (const s of info.stages.filter((s) => s.kind === "norm")) $("lrn-stage").append(el("option", { value: s.name, textContent: s.name }));
  if (!info.folder) $("count").textContent = "Start with --images FOLDER to pick images here.";
  $("neighbours").hidden = !info.features;
  if (info.features) $("nn-layer").textContent = info.features.layer;
  await listImages(true);
}

async function listImages(fresh) {
  if (!info.folder) return;
  if (fresh) { offset = 0; $("images").replaceChildren(); }
  const q = encodeURIComponent($("search").value);
  const r = await api(`/api/images?q=${q}&offset=${offset}&limit=200`);
  for (const name of r.names) {
    const img = el("img", { alt: "", loading: "lazy", src: `/api/thumb?path=${encodeURIComponent(name)}` });
    const b = el("button", { title: name, type: "button" }, img, el("span", { textContent: name }));
    b.dataset.path = name;
    b.addEventListener("click", () => { mark(b); show(api(`/api/analyze?path=${encodeURIComponent(name)}`, { method: "POST" }), name); });
    $("images").append(el("li", {}, b));
  }
  offset += r.names.length;
  $("count").textContent = `${r.total} image(s) in the folder`;
  $("more").hidden = offset >= r.total;
}

function mark(button) {
  if (picked) picked.classList.remove("current");
  picked = button;
  if (button) button.classList.add("current");
}

function upload(file) {
  if (!file) return;
  mark(null);
  if (file.size > info.max_upload) return status(`${file.name}: larger than the ${info.max_upload.toLocaleString("en")} bytes an upload may have`, true);
  show(api(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file }), file.name);
}

async function show(request, name) {
  const asked = (show.n = (show.n || 0) + 1);
  status(`${name}: through the network…`);
  let r;
  try { r = await request; } catch (e) { if (asked === show.n) status(e.message, true); return; }
  if (asked !== show.n) return; // a later pick won
  stopOcclusion();
  current = r;
  document.body.dataset.ready = "";
  $("input").src = r.input;
  $("input-name").textContent = name;
  $("top5").replaceChildren(...r.top5.map((t) => {
    const bar = el("div", { className: "bar" });
    bar.style.width = Math.max(0.5, 100 * t.p) + "%";
    return el("li", {}, el("span", { className: "name", textContent: t.name }), el("span", { className: "p", textContent: pct(t.p) }), bar);
  }));
  $("stages").replaceChildren(...r.stages.map(stageFigure));
  for (const id of ["prediction", "activations", "occlusion"]) $(id).hidden = false;
  $("channel").hidden = true;
  $("occ-map").hidden = true;
  $("occ-status").textContent = "";
  $("occ-progress").value = 0;
  status(`${name}: done (pictures drawn in ${r.render_ms} ms).`);
  document.body.dataset.ready = r.id;
  showLrn(null);
  if (info.features) showNeighbours();
}

function stageFigure(s) {
  const L = s.layout;
  const width = L.towers * L.cols * (L.w + L.pad) + (L.towers - 1) * L.gap;
  const img = el("img", { src: s.png, alt: `${s.name} maps` });
  img.width = 340; // every layer the same size on the page: three to a row
  if (width > 340) img.classList.add("smooth"); // shrunk: averaged, not dropped, pixels
  img.dataset.stage = s.name;
  img.addEventListener("click", (ev) => {
    const x = Math.floor(ev.offsetX * img.naturalWidth / img.clientWidth);
    const y = Math.floor(ev.offsetY * img.naturalHeight / img.clientHeight);
    const c = channelAt(L, x, y);
    if (c !== null) showChannel(s, c);
  });
  const [c, h, w] = s.shape;
  const cap = el("figcaption", { textContent: s.name + " " }, el("span", { textContent: `${c}×${h}×${w}, field ${s.field}px` }));
  return el("figure", { className: `stage ${s.kind}` }, cap, img);
}

// the inverse of network.grid()'s layout (network.channel_at, tested there)
function channelAt(L, x, y) {
  const tw = L.w + L.pad, th = L.h + L.pad, block = L.cols * tw + L.gap;
  const tower = Math.floor(x / block), xr = x % block, col = Math.floor(xr / tw), row = Math.floor(y / th);
  if (tower >= L.towers || xr % tw >= L.w || y % th >= L.h || col >= L.cols) return null;
  const j = row * L.cols + col;
  return j < L.per ? tower * L.per + j : null;
}

async function showChannel(s, c) {
  const id = current.id;
  let r;
  try { r = await api(`/api/channel?id=${id}&stage=${s.name}&c=${c}`); } catch (e) { return status(e.message, true); }
  if (!current || current.id !== id) return;
  $("channel").hidden = false;
  $("channel-title").textContent = `${r.stage}, channel ${r.channel}`;
  $("channel-map").src = r.png;
  $("channel-input").src = r.input;
  $("channel-numbers").textContent = `${r.shape[0]}×${r.shape[1]} map; max ${num(r.max)} at (${r.y}, ${r.x}), mean ${num(r.mean)}, ` +
    `${(100 * r.active).toFixed(1)}% of its units above 0; each unit sees ${r.field}×${r.field} input pixels`;
  $("patches").replaceChildren(...r.patches.map((p) => el("figure", {},
    el("img", { src: p.png, alt: p.name }), el("figcaption", { textContent: `${num(p.value)} · ${p.name}` }))));
  $("patches-note").textContent = r.images === undefined ? "Start with --images FOLDER to see them."
    : `The strongest unit of this channel in each of the ${r.indexed} of ${r.images} folder images looked at so far; the patch is what that unit sees.`;
  $("channel").scrollIntoView({ behavior: "smooth", block: "nearest" });
  const norms = info.stages.filter((x) => x.kind === "norm").map((x) => x.name);
  const i = info.stages.findIndex((x) => x.name === s.name);
  const next = info.stages[i + 1];
  if (norms.includes(s.name)) showLrn(c, s.name);
  else if (next && next.kind === "norm") showLrn(c, next.name);
}

async function showLrn(c, stage) {
  if (!$("lrn-stage").options.length) return;
  if (stage) $("lrn-stage").value = stage;
  const id = current.id;
  const q = `id=${id}&stage=${$("lrn-stage").value}` + (c === null ? "" : `&c=${c}`);
  let r;
  try { r = await api(`/api/lrn?${q}`); } catch (e) { return status(e.message, true); }
  if (!current || current.id !== id) return;
  $("lrn").hidden = false;
  $("lrn-channel").value = r.channel;
  $("lrn-before").src = r.png_before;
  $("lrn-after").src = r.png_after;
  $("lrn-kept").src = r.png_kept;
  $("lrn-before-cap").textContent = `${r.before_stage}, before: max ${num(r.max_before)}, mean ${num(r.mean_before)}`;
  $("lrn-after-cap").textContent = `${r.stage}, after (same scale): max ${num(r.max_after)}, mean ${num(r.mean_after)}`;
  $("lrn-kept-cap").textContent = `b / a: ${num(r.kept_min)} … ${num(r.kept_max)} (k^-β = ${num(Math.pow(r.k, -r.beta))} with no neighbours active)`;
  const vals = r.window.map((j, i) => `a${j} = ${num(r.values[i])}`).join(", ");
  $("lrn-numbers").textContent =
    `At the channel's strongest unit (${r.y}, ${r.x}):\n` +
    `  the ${r.window.length} channels around it: ${vals}\n` +
    `  Σ a² = ${num(r.sum_sq)};  k = ${r.k}, α = ${r.alpha}` + (r.convention === "caffe" ? ` / n = ${num(r.alpha_effective)} (Caffe's convention)` : " (the paper's convention)") + `, β = ${r.beta}\n` +
    `  (k + α Σ a²)^β = ${num(r.denominator)}\n` +
    `  b = ${num(r.a)} / ${num(r.denominator)} = ${num(r.b_formula)}   (the network's own output: ${num(r.b_network)})`;
  document.body.dataset.lrn = id;
}

async function showNeighbours() {
  const id = current.id;
  let r;
  try { r = await api(`/api/neighbours?id=${id}`); } catch (e) { $("nn-note").textContent = e.message; return; }
  if (!current || current.id !== id) return;
  $("nn-note").textContent = r.note || `The features file's images nearest this one by Euclidean distance of their ${r.layer} vectors.`;
  $("nn").replaceChildren(...r.items.map((n) => el("figure", {},
    n.png ? el("img", { src: n.png, alt: n.path }) : el("div", { textContent: "(unreadable)" }),
    el("figcaption", { textContent: `${n.label} · ${num(n.distance)}` }))));
  document.body.dataset.nn = id;
}

function stopOcclusion() {
  if (!occ) return;
  occ.source.close();
  fetch(`/api/cancel?job=${occ.job}`, { method: "POST" });
  occ = null;
  $("occ-start").disabled = false;
  $("occ-cancel").disabled = true;
}

function startOcclusion() {
  stopOcclusion();
  const job = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const size = $("occ-size").value, stride = $("occ-stride").value;
  const source = new EventSource(`/api/occlusion?id=${current.id}&size=${size}&stride=${stride}&job=${job}`);
  occ = { source, job };
  $("occ-start").disabled = true;
  $("occ-cancel").disabled = false;
  $("occ-status").textContent = "starting…";
  const finish = (text, error = false) => {
    source.close();
    if (occ && occ.source === source) occ = null;
    $("occ-start").disabled = false;
    $("occ-cancel").disabled = true;
    $("occ-status").textContent = text;
    $("occ-status").classList.toggle("error", error);
  };
  source.addEventListener("progress", (e) => {
    const d = JSON.parse(e.data);
    $("occ-progress").max = d.total;
    $("occ-progress").value = d.done;
    $("occ-status").textContent = `${d.done} / ${d.total} positions`;
  });
  source.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    $("occ-map").src = d.png;
    $("occ-map").hidden = false;
    $("occ-caption").textContent = `P(${d.target}) = ${pct(d.p)} unoccluded; ${pct(d.min)} … ${pct(d.max)} with the ` +
      `${d.size}px square somewhere, lowest with its corner at (${d.at[0]}, ${d.at[1]}).`;
    finish("done");
  });
  source.addEventListener("cancelled", () => finish("cancelled"));
  source.addEventListener("failed", (e) => finish(JSON.parse(e.data).error, true));
  source.onerror = () => { if (occ && occ.source === source) finish("the stream stopped (is the server running?)", true); };
}

window.addEventListener("DOMContentLoaded", () => {
  $("file").addEventListener("change", (e) => upload(e.target.files[0]));
  $("search").addEventListener("input", () => listImages(true));
  $("more").addEventListener("click", () => listImages(false));
  $("occ-start").addEventListener("click", startOcclusion);
  $("occ-cancel").addEventListener("click", () => { stopOcclusion(); $("occ-status").textContent = "cancelled"; });
  $("lrn-stage").addEventListener("change", () => current && showLrn(null));
  $("lrn-channel").addEventListener("change", () => current && showLrn(parseInt($("lrn-channel").value, 10) || 0));
  document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("over"); });
  document.addEventListener("dragleave", () => document.body.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("over");
    upload(e.dataTransfer.files[0]);
  });
  start().catch((e) => status(e.message, true));
});
