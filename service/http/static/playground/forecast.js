// Forecast tab: an M4 example or the user's own column -> POST /v1/forecast -> uPlot fan chart.
import { api, showMessage } from "./api.js";
import { parseTable } from "./table.js";

const BAND_ALPHAS = [0.1, 0.16, 0.24];
let models = [];
let examples = [];
let own = null; // {id, values} from pasted or uploaded data
let table = null;

const $ = (id) => document.getElementById(id);

function chartSize() {
  return { width: Math.max(320, $("fc-chart").clientWidth - 8), height: 380 };
}

export function resizeForecastChart() {
  const chart = window.seqserve.charts.forecast;
  if (chart) chart.setSize(chartSize());
}

function currentSeries() {
  const choice = $("fc-example").value;
  if (choice === "own") return own;
  const example = examples.find((e) => e.id === choice);
  return example ? { id: example.id, values: example.history, truth: example.truth } : null;
}

function modelFor(name) {
  return models.find((m) => m.name === name);
}

function onModelChange() {
  const model = modelFor($("fc-model").value);
  if (!model) return;
  const horizon = model.parameters.horizon;
  $("fc-horizon").max = horizon;
  if (Number($("fc-horizon").value) > horizon || !$("fc-horizon").value) $("fc-horizon").value = horizon;
}

// Quantile keys as the API returns them ("0.05"...), paired outside-in: (0.05, 0.95), (0.1, 0.9), ...
function bandPairs(keys) {
  const sorted = [...keys].sort((a, b) => Number(a) - Number(b));
  const pairs = [];
  for (const low of sorted) {
    const high = sorted.find((k) => Math.abs(Number(k) + Number(low) - 1) < 1e-9);
    if (Number(low) < 0.5 && high) pairs.push([low, high]);
  }
  return pairs;
}

function draw(series, result) {
  const n = series.values.length;
  const h = result.point.length;
  const x = [];
  for (let i = 0; i < n + h; i++) x.push(i - n + 1); // 0 = last observation
  const pad = (values, before) => [...Array(before).fill(null), ...values, ...Array(n + h - before - values.length).fill(null)];
  // The median line starts at the last observation so the forecast visibly continues the history.
  const data = [x, pad(series.values, 0)];
  const opts = {
    ...chartSize(),
    scales: { x: { time: false } },
    axes: [{ label: "hours (0 = last observation)" }, { label: "value", size: 70 }],
    series: [{ label: "hour" }, { label: "history", stroke: "#1f4e79", width: 1.5 }],
    bands: [],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  };
  if (series.truth) {
    data.push(pad(series.truth.slice(0, h), n));
    opts.series.push({ label: "actual (test)", stroke: "#2a9d8f", width: 1.5, dash: [5, 4] });
  }
  const pairs = bandPairs(Object.keys(result.quantiles));
  pairs.forEach(([low, high], index) => {
    const alpha = BAND_ALPHAS[index % BAND_ALPHAS.length];
    const lowIndex = data.length;
    data.push(pad(result.quantiles[low], n));
    data.push(pad(result.quantiles[high], n));
    opts.series.push({ label: `q${low}`, stroke: `rgba(209,73,91,${alpha + 0.15})`, width: 1 });
    opts.series.push({ label: `q${high}`, stroke: `rgba(209,73,91,${alpha + 0.15})`, width: 1 });
    opts.bands.push({ series: [lowIndex + 1, lowIndex], fill: `rgba(209,73,91,${alpha})` });
  });
  data.push(pad([series.values[n - 1], ...result.point], n - 1).slice(0, n + h));
  opts.series.push({ label: "median forecast", stroke: "#d1495b", width: 2.5 });
  const old = window.seqserve.charts.forecast;
  if (old) old.destroy();
  $("fc-chart").innerHTML = "";
  window.seqserve.charts.forecast = new uPlot(opts, data, $("fc-chart"));
}

async function run() {
  const series = currentSeries();
  showMessage($("fc-message"), "");
  if (!series) {
    showMessage($("fc-message"), "Pick an example series or load your own values first.");
    return;
  }
  const body = {
    model: $("fc-model").value,
    horizon: Number($("fc-horizon").value),
    series: [{ id: series.id, values: series.values }],
  };
  $("fc-run").disabled = true;
  try {
    const response = await api("/v1/forecast", { method: "POST", body });
    const result = response.forecasts[0];
    window.seqserve.lastForecast = { request: body, response };
    draw(series, result);
    const keys = Object.keys(result.quantiles).join(", ");
    $("fc-note").textContent =
      `${response.model.name} v${response.model.version}: ${result.point.length} steps ahead from the last ` +
      `${result.context_length_used} of ${series.values.length} values; bands between quantiles ${keys}. ` +
      "Hover the chart for values; drag to zoom, double-click to reset.";
  } catch (error) {
    showMessage($("fc-message"), error.message);
  } finally {
    $("fc-run").disabled = false;
  }
}

function showColumns(text, name) {
  try {
    table = parseTable(text);
  } catch (error) {
    showMessage($("fc-message"), error.message);
    return;
  }
  $("fc-column").innerHTML = "";
  table.columns.forEach((column, index) => {
    const option = document.createElement("option");
    option.value = String(index);
    option.textContent = `${column.name} (${column.values.length} values)`;
    $("fc-column").appendChild(option);
  });
  $("fc-column").disabled = table.columns.length < 2;
  table.source = name;
}

function useOwn() {
  if (!table && $("fc-paste").value.trim()) showColumns($("fc-paste").value, "pasted");
  if (!table) {
    showMessage($("fc-message"), "Paste some values or choose a file first.");
    return;
  }
  const column = table.columns[Number($("fc-column").value || 0)];
  try {
    own = { id: `${table.source}: ${column.name}`, values: column.numbers() };
  } catch (error) {
    showMessage($("fc-message"), error.message);
    return;
  }
  let option = $("fc-example").querySelector('option[value="own"]');
  if (!option) {
    option = document.createElement("option");
    option.value = "own";
    $("fc-example").appendChild(option);
  }
  option.textContent = `your data (${own.values.length} values)`;
  $("fc-example").value = "own";
  run();
}

export async function setupForecast(forecastModels) {
  models = forecastModels;
  const asset = await fetch("/static/examples/m4_hourly.json").then((r) => r.json());
  examples = asset.series;
  for (const example of examples) {
    const option = document.createElement("option");
    option.value = example.id;
    option.textContent = `M4 Hourly ${example.id} (${example.history.length} h)`;
    $("fc-example").appendChild(option);
  }
  $("fc-model").addEventListener("change", onModelChange);
  $("fc-run").addEventListener("click", run);
  $("fc-example").addEventListener("change", run);
  $("fc-paste").addEventListener("input", () => { table = null; });
  $("fc-file").addEventListener("change", async () => {
    const file = $("fc-file").files[0];
    if (file) showColumns(await file.text(), file.name);
  });
  $("fc-use-own").addEventListener("click", useOwn);
  window.addEventListener("resize", resizeForecastChart);
  onModelChange();
  if (!models.length) {
    showMessage($("fc-message"), "No forecast model is ready on this service.", "info");
    return;
  }
  await run();
}
