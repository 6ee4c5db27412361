// Classification tab: draw a digit on a canvas -> 28 rows of 28 pixels (0-255) -> POST /v1/classify.
import { api, showMessage } from "./api.js";
import { probabilityBars } from "./sentiment.js";

const $ = (id) => document.getElementById(id);
const SIZE = 28;
const BOX = 20; // MNIST digits fit a 20x20 box centred in 28x28

function setupDrawing(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.lineWidth = 22;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#fff";
  let drawing = false;
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * (canvas.width / rect.width), (event.clientY - rect.top) * (canvas.height / rect.height)];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.moveTo(...point(event));
    ctx.lineTo(...point(event));
    ctx.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    ctx.lineTo(...point(event));
    ctx.stroke();
  });
  const stop = () => { drawing = false; };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
}

function clear() {
  const canvas = $("cl-canvas");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  $("cl-preview").getContext("2d").clearRect(0, 0, SIZE, SIZE);
  $("cl-results").innerHTML = "";
}

// The drawing's bounding box, scaled to fit 20x20 and centred in 28x28, as MNIST was prepared.
export function toPixels(canvas) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const image = ctx.getImageData(0, 0, width, height).data;
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (image[(y * width + x) * 4] > 0) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const small = document.createElement("canvas");
  small.width = SIZE;
  small.height = SIZE;
  const sctx = small.getContext("2d");
  sctx.fillStyle = "#000";
  sctx.fillRect(0, 0, SIZE, SIZE);
  const scale = BOX / Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const w = (x1 - x0 + 1) * scale;
  const h = (y1 - y0 + 1) * scale;
  sctx.imageSmoothingQuality = "high";
  sctx.drawImage(canvas, x0, y0, x1 - x0 + 1, y1 - y0 + 1, (SIZE - w) / 2, (SIZE - h) / 2, w, h);
  const pixels = sctx.getImageData(0, 0, SIZE, SIZE).data;
  const rows = [];
  for (let y = 0; y < SIZE; y++) {
    const row = [];
    for (let x = 0; x < SIZE; x++) row.push(pixels[(y * SIZE + x) * 4]);
    rows.push(row);
  }
  $("cl-preview").getContext("2d").drawImage(small, 0, 0);
  return rows;
}

async function run() {
  showMessage($("cl-message"), "");
  const rows = toPixels($("cl-canvas"));
  if (!rows) {
    showMessage($("cl-message"), "Draw a digit first.");
    return;
  }
  try {
    const response = await api("/v1/classify", { method: "POST", body: { model: $("cl-model").value, sequences: [rows] } });
    const result = response.results[0];
    window.seqserve.lastClassify = response;
    const box = $("cl-results");
    box.innerHTML = "";
    const title = document.createElement("p");
    title.className = "verdict";
    title.textContent = `${result.label} (${(100 * result.score).toFixed(1)}%)`;
    box.append(title, probabilityBars(result.probabilities, result.label));
  } catch (error) {
    showMessage($("cl-message"), error.message);
  }
}

export function setupClassify() {
  setupDrawing($("cl-canvas"));
  clear();
  $("cl-clear").addEventListener("click", clear);
  $("cl-run").addEventListener("click", run);
}
