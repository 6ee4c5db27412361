// Playground entry: find out whether a key is needed, list the models, then wire up each tab.
import { ApiError, api, apiKey, setApiKey } from "./api.js";
import { resizeForecastChart, setupForecast } from "./forecast.js";
import { setupSentiment } from "./sentiment.js";
import { setupGenerate } from "./generate.js";
import { setupClassify } from "./classify.js";
import { setupModels } from "./models.js";

// Tests and curious people read the page's state here (e.g. the forecast chart's data).
window.seqserve = { charts: {}, models: [] };

function selectTab(name) {
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll(".tab")) {
    panel.hidden = panel.id !== "tab-" + name;
  }
  if (name === "forecast") resizeForecastChart();
}

function fillSelect(select, models) {
  select.innerHTML = "";
  for (const model of models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = `${model.name} (v${model.version})`;
    select.appendChild(option);
  }
}

async function loadModels() {
  const status = document.getElementById("status");
  try {
    const { models } = await api("/v1/models");
    document.getElementById("key-panel").hidden = true;
    window.seqserve.models = models;
    const ready = models.filter((m) => m.state === "ready");
    status.textContent = `${ready.length} of ${models.length} models ready` + (apiKey() ? " · key set" : "");
    status.className = "status ok";
    return models;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      document.getElementById("key-panel").hidden = false;
      status.textContent = apiKey() ? "key refused" : "API key needed";
    } else {
      status.textContent = "service unreachable";
    }
    status.className = "status bad";
    return null;
  }
}

function byTask(models, task) {
  return models.filter((m) => m.state === "ready" && m.task === task);
}

let booted = false;

async function boot() {
  const models = await loadModels();
  if (!models || booted) return;
  booted = true;
  const tasks = {
    forecast: byTask(models, "forecast"),
    sentiment: byTask(models, "sentiment"),
    generate: byTask(models, "generate"),
    classify: byTask(models, "classify"),
  };
  fillSelect(document.getElementById("fc-model"), tasks.forecast);
  fillSelect(document.getElementById("st-model"), tasks.sentiment);
  fillSelect(document.getElementById("gen-model"), tasks.generate);
  fillSelect(document.getElementById("cl-model"), tasks.classify);
  // Generation and classification tabs exist only when such a model is served.
  document.querySelector('[data-tab="generate"]').hidden = tasks.generate.length === 0;
  document.querySelector('[data-tab="classify"]').hidden = tasks.classify.length === 0;
  await setupForecast(tasks.forecast);
  setupSentiment();
  if (tasks.generate.length) setupGenerate();
  if (tasks.classify.length) setupClassify();
  setupModels(models);
  document.body.dataset.ready = "true";
}

for (const button of document.querySelectorAll("[data-tab]")) {
  button.addEventListener("click", () => selectTab(button.dataset.tab));
}
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(document.getElementById("api-key").value.trim());
  document.getElementById("api-key").value = "";
  boot();
});
boot();
