// Sentiment tab: one text per line -> POST /v1/sentiment -> label and probability bars per text.
import { api, showMessage } from "./api.js";

const $ = (id) => document.getElementById(id);

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

export function probabilityBars(probabilities, best) {
  const box = document.createElement("div");
  box.className = "bars";
  for (const [label, p] of Object.entries(probabilities)) {
    const line = document.createElement("div");
    line.className = "bar-line" + (label === best ? " best" : "");
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    bar.appendChild(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = `${(100 * p).toFixed(1)}%`;
    line.append(name, bar, value);
    box.appendChild(line);
  }
  return box;
}

function render(texts, response) {
  const table = $("st-results");
  table.innerHTML = "<thead><tr><th>text</th><th>label</th><th>probabilities</th></tr></thead>";
  const body = document.createElement("tbody");
  response.results.forEach((result, i) => {
    const row = document.createElement("tr");
    cell(row, texts[i] + (result.truncated ? " (truncated)" : ""), "text");
    cell(row, result.label, `label label-${result.label}`);
    row.appendChild(document.createElement("td")).appendChild(probabilityBars(result.probabilities, result.label));
    body.appendChild(row);
  });
  table.appendChild(body);
}

async function run() {
  const texts = $("st-texts").value.split("\n").map((t) => t.trim()).filter(Boolean);
  showMessage($("st-message"), "");
  if (!texts.length) {
    showMessage($("st-message"), "Type at least one text.");
    return;
  }
  $("st-run").disabled = true;
  try {
    const response = await api("/v1/sentiment", { method: "POST", body: { model: $("st-model").value, texts } });
    window.seqserve.lastSentiment = response;
    render(texts, response);
  } catch (error) {
    showMessage($("st-message"), error.message);
  } finally {
    $("st-run").disabled = false;
  }
}

export function setupSentiment() {
  $("st-run").addEventListener("click", run);
}
