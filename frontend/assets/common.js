// Shared by the speech and admin pages: API errors, DOM building, formatting.

/** An API answer that was not 2xx, with the server's error code, message and Retry-After. */
export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null, body = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/** Turn a non-2xx response into an ApiError (the API's JSON error shape, else the status). */
export async function apiError(response) {
  const header = response.headers.get("Retry-After");
  const retryAfter = header !== null && header !== "" ? Number(header) : null;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = body && body.error ? body.error : {};
  const message = detail.message || response.statusText || `HTTP ${response.status}`;
  return new ApiError(response.status, detail.code || `http_${response.status}`, message, {
    retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
    body: detail,
  });
}

/** fetch + JSON; throws ApiError on a non-2xx answer, TypeError on a network failure. */
export async function getJSON(url, options = {}) {
  const response = await fetch(url, { cache: "no-store", ...options });
  if (!response.ok) throw await apiError(response);
  return response.json();
}

/** Build an element: el("td", {class: "x"}, "text", child). Text is never parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const numberFormat = new Intl.NumberFormat("en");

export function formatNumber(value) {
  return numberFormat.format(value);
}

export function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatSeconds(seconds) {
  if (seconds < 10) return `${seconds.toFixed(2)} s`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds % 60)} s`;
}

export function formatTime(date) {
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** "in 5 s" for a Retry-After, or a fallback when the server named none. */
export function retryText(seconds, fallback = "in a few seconds") {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return fallback;
  return `in ${Math.max(1, Math.ceil(seconds))} s`;
}
