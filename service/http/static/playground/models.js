// Models tab: one card per model from /v1/models, details from /v1/models/{name}/card.
import { api, blobUrl } from "./api.js";

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function fmt(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// Nested objects as "a.b.c | value" rows: every manifest's evaluation has its own shape.
function flatTable(object, skip = []) {
  const table = el("table", null, "kv");
  const walk = (value, path) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) if (!skip.includes(key)) walk(inner, [...path, key]);
      return;
    }
    const row = table.insertRow();
    row.insertCell().textContent = path.join(" › ");
    row.insertCell().textContent = fmt(value);
  };
  walk(object, []);
  return table;
}

// Forecasters record {model: {metric: v}, baselines: {name: {metric: v}}}: one row per method.
function comparison(evaluation) {
  const metrics = Object.keys(evaluation.model);
  const table = el("table", null, "compare");
  const head = table.createTHead().insertRow();
  for (const title of ["method", ...metrics]) head.appendChild(el("th", title));
  const rows = [["this model", evaluation.model], ...Object.entries(evaluation.baselines)];
  for (const [name, scores] of rows) {
    const row = table.insertRow();
    row.insertCell().textContent = name;
    for (const metric of metrics) row.insertCell().textContent = fmt(scores[metric]);
  }
  return table;
}

function section(card, title, content) {
  const box = el("details", null, "section");
  box.appendChild(el("summary", title));
  box.appendChild(content);
  card.appendChild(box);
  return box;
}

function filesTable(files) {
  const table = el("table", null, "files");
  const head = table.createTHead().insertRow();
  for (const title of ["file", "bytes", "sha256"]) head.appendChild(el("th", title));
  for (const file of files) {
    const row = table.insertRow();
    row.insertCell().textContent = file.name;
    row.insertCell().textContent = file.bytes.toLocaleString("en");
    const sha = row.insertCell();
    sha.appendChild(el("code", file.sha256.slice(0, 16) + "…")).title = file.sha256;
  }
  return table;
}

async function reports(card, details) {
  const pictures = details.files.filter((f) => f.url && /\.(png|svg)$/.test(f.name));
  if (!details.report && !pictures.length) return;
  const box = el("div", null, "report");
  if (details.report) {
    const link = el("a", "report.md");
    link.href = details.report;
    link.target = "_blank";
    link.addEventListener("click", async (event) => {
      // Behind the API: fetch with the key, then open the text.
      event.preventDefault();
      window.open(await blobUrl(details.report), "_blank");
    });
    box.append(el("span", "Evaluation report: "), link);
  }
  const gallery = el("div", null, "gallery");
  for (const picture of pictures) {
    const figure = el("figure");
    const img = el("img");
    img.alt = picture.name;
    img.src = await blobUrl(picture.url);
    const full = el("a");
    full.href = img.src; // the same object URL, full size in a new tab
    full.target = "_blank";
    full.title = "open full size";
    full.appendChild(img);
    figure.append(full, el("figcaption", picture.name));
    gallery.appendChild(figure);
  }
  box.appendChild(gallery);
  section(card, "Report", box).open = true;
}

async function fill(card, model) {
  const details = await api(`/v1/models/${encodeURIComponent(model.name)}/card`);
  if (details.description) card.appendChild(el("p", details.description, "description"));
  const facts = el("dl", null, "facts");
  const hint = details.serving || {};
  for (const [term, value] of [
    ["task", details.task],
    ["version", `${details.version} (loaded: ${model.versions.join(", ") || details.version})`],
    ["provider", details.provider],
    ["model sha256", details.model_sha256 ? details.model_sha256.slice(0, 16) + "…" : null],
    ["serving hint", hint.preferred_batch_size ? `${hint.preferred_batch_size} rows per run on ${hint.provider}` : null],
  ]) {
    facts.append(el("dt", term), el("dd", fmt(value)));
  }
  card.appendChild(facts);
  const evaluation = details.evaluation || {};
  const evalBox = el("div");
  if (!Object.keys(evaluation).length) evalBox.appendChild(el("p", "No evaluation recorded in the manifest.", "note"));
  if (evaluation.model && evaluation.baselines) evalBox.appendChild(comparison(evaluation));
  evalBox.appendChild(flatTable(evaluation, evaluation.model && evaluation.baselines ? ["model", "baselines"] : []));
  section(card, "Evaluation", evalBox).open = true;
  if (Object.keys(details.parity || {}).length) section(card, "Parity (ONNX vs PyTorch)", flatTable(details.parity));
  if (Object.keys(hint).length) section(card, "Serving hint", flatTable(hint));
  section(card, "Files and checksums", filesTable(details.files));
  await reports(card, details);
}

export async function setupModels(models) {
  const cards = $("md-cards");
  cards.innerHTML = "";
  for (const model of models) {
    const card = el("article", null, "card");
    card.dataset.model = model.name;
    const title = el("h2", model.name);
    title.appendChild(el("span", model.state, `state state-${model.state}`));
    card.appendChild(title);
    cards.appendChild(card);
    if (model.state !== "ready") {
      card.appendChild(el("p", model.error || "not loaded", "message error"));
      continue;
    }
    fill(card, model).catch((error) => card.appendChild(el("p", error.message, "message error")));
  }
}
