// Text generation tab: POST /v1/generate with stream: true; text is appended as each SSE event arrives.
import { ApiError, request, showMessage } from "./api.js";

const $ = (id) => document.getElementById(id);
let controller = null;

// Yields the JSON of each "data: {...}" event of a Server-Sent Events body.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data && data !== "[DONE]") yield JSON.parse(data);
    }
  }
}

async function run() {
  const output = $("gen-output");
  output.textContent = "";
  showMessage($("gen-message"), "");
  const body = {
    model: $("gen-model").value,
    prompt: $("gen-prompt").value,
    temperature: Number($("gen-temperature").value),
    max_new_tokens: Number($("gen-max").value),
    stream: true,
  };
  if ($("gen-seed").value !== "") body.seed = Number($("gen-seed").value);
  controller = new AbortController();
  $("gen-run").disabled = true;
  $("gen-stop").disabled = false;
  try {
    const response = await request("/v1/generate", { method: "POST", body, signal: controller.signal });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = body.prompt;
    output.appendChild(prompt);
    let last = null;
    for await (const chunk of events(response)) {
      if (chunk.error) throw new Error(chunk.error.message || String(chunk.error));
      output.appendChild(document.createTextNode(chunk.text || ""));
      last = chunk;
    }
    if (last) showMessage($("gen-message"), `${last.tokens} tokens; finished: ${last.finish_reason}`, "info");
  } catch (error) {
    if (error.name !== "AbortError") showMessage($("gen-message"), error.message);
    else showMessage($("gen-message"), "stopped", "info");
  } finally {
    $("gen-run").disabled = false;
    $("gen-stop").disabled = true;
  }
}

export function setupGenerate() {
  $("gen-run").addEventListener("click", run);
  $("gen-stop").addEventListener("click", () => controller && controller.abort());
}
