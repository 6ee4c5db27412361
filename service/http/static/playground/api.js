// Calls to this service's API. The key (when the service wants one) lives only in sessionStorage.
const KEY_STORAGE = "seqserve.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const err = body && body.error;
    let text = err ? err.message : `HTTP ${status}`;
    if (err && err.details && err.details.length) {
      text += " — " + err.details.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; ");
    }
    super(text);
    this.status = status;
    this.body = body;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) out["X-API-Key"] = key;
  return out;
}

// fetch() with the key; returns the Response (callers that stream read its body themselves).
export function request(path, { method = "GET", body, signal } = {}) {
  return fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
}

export async function api(path, options = {}) {
  const response = await request(path, options);
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A file behind the API (a report picture) as an object URL, since <img src> cannot send a key.
export async function blobUrl(path) {
  const response = await request(path);
  if (!response.ok) throw new ApiError(response.status, null);
  return URL.createObjectURL(await response.blob());
}

export function showMessage(element, text, kind = "error") {
  element.textContent = text || "";
  element.className = "message" + (text ? " " + kind : "");
}
