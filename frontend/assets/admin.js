// The admin page: engine and health checks, the live queue, failed jobs (retry), waiting jobs
// (cancel), the audio cache (purge after a confirmation), recent errors and monitoring links.
// Everything comes from /health* and /api/admin/*; it refreshes every few seconds while the
// tab is visible. The backend (and the proxy) serve a 403 page instead of this one to addresses
// outside EF_ADMIN_CIDRS; should this page be opened anyway, the first 403 replaces it with the
// same explanation.
import { ApiError, el, formatBytes, formatNumber, formatSeconds, formatTime, getJSON } from "./common.js";

// Each refresh makes seven admin API calls, which count against EF_RATE_LIMIT (120 a minute
// per address by default): every 10 s leaves most of it for speaking from the same machine.
const REFRESH_MS = 10_000;
const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const errorEl = $("error");
const updated = $("updated");
const pauseButton = $("pause");
const purgeDialog = $("purge-dialog");

const TOKEN_STORAGE = "echoforge.adminToken";
const tokenForm = $("token-form");
const tokenInput = $("admin-token");

const state = { paused: false, timer: null, cache: null, forbidden: false, linksShown: false };

/** The admin API, with the admin token (EF_ADMIN_TOKEN) when one was entered. */
function admin(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_STORAGE);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return getJSON(`/api/admin/${path}`, { ...options, headers });
}

/** The server wants a token (or a different one): ask for it, and stop refreshing till then. */
function askForToken(error) {
  clearTimeout(state.timer);
  const had = sessionStorage.getItem(TOKEN_STORAGE);
  $("token-hint").textContent = had
    ? `The admin token was not accepted (${error.message}). Check it and try again.`
    : "This server needs its admin token (EF_ADMIN_TOKEN) for the admin API.";
  tokenForm.hidden = false;
  updated.textContent = "Waiting for the admin token.";
  document.documentElement.dataset.ready = "true";
  tokenInput.focus();
}

function say(message) {
  statusEl.textContent = message;
}

function showError(message) {
  errorEl.replaceChildren(el("strong", {}, "Action failed. "), message);
  errorEl.hidden = false;
}

function badge(status) {
  const label = { ok: "OK", warn: "warning", fail: "failing", degraded: "degraded" }[status] || status;
  return el("span", { class: `badge ${status === "degraded" ? "warn" : status}` }, label);
}

function stat(term, value) {
  return el("div", {}, el("dt", {}, term), el("dd", {}, value));
}

function shortId(id) {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

function age(iso) {
  return formatSeconds(Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000));
}

/** Re-render a container without losing the keyboard focus of a control with a data-key. */
function render(container, children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : null;
  container.replaceChildren(...children);
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

/** The 403 explanation, if this page was opened from outside EF_ADMIN_CIDRS anyway. */
function forbidden(error) {
  state.forbidden = true;
  clearTimeout(state.timer);
  document.title = "403: admin page not available here · EchoForge";
  document.querySelector("main").replaceChildren(
    el(
      "section",
      { class: "card" },
      el("h2", {}, "403: the admin page is not open to your address"),
      el("p", {}, error.message),
      el("p", {}, "Open this page from a device on the admin network, or ask the operator to add your address to EF_ADMIN_CIDRS."),
      el("p", {}, el("a", { href: "/" }, "Go to the speech page"), ": it is open to everyone."),
    ),
  );
}

async function healthOf(path) {
  // /health answers 503 with the same body when a check fails: that is data, not an error.
  const response = await fetch(path, { cache: "no-store" });
  if (response.status !== 200 && response.status !== 503) {
    throw new ApiError(response.status, `http_${response.status}`, `${path} answered ${response.status}`);
  }
  return response.json();
}

function renderHealth(health, ready) {
  const engine = health.checks.engine || { status: "fail", detail: {} };
  const detail = engine.detail || {};
  render($("engine"), [
    stat("Engine", badge(engine.status)),
    stat("Overall", badge(health.status)),
    stat("Engine name", `${detail.engine || "?"}`),
    stat("Model", `${detail.model || "?"}${detail.model_loaded ? "" : " (not loaded)"}`),
    stat("Reachable", detail.reachable ? "yes" : "no"),
    stat("Sample latency", detail.latency_ms === null || detail.latency_ms === undefined ? "n/a" : `${formatNumber(Math.round(detail.latency_ms))} ms`),
    stat("Version", `${health.version} (${health.commit})`),
  ]);
  const rows = [];
  for (const [source, body] of [["/health", health], ["/health/ready", ready]]) {
    for (const [name, check] of Object.entries(body.checks)) {
      const extra = Object.entries(check.detail || {})
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ");
      rows.push(
        el(
          "tr",
          {},
          el("th", { scope: "row" }, name, el("span", { class: "hint" }, ` ${source}`)),
          el("td", {}, badge(check.status)),
          el("td", {}, `${check.duration_ms.toFixed(1)} ms`),
          el("td", { class: "wrap" }, [check.error, extra].filter(Boolean).join(" · ") || "—"),
        ),
      );
    }
  }
  render($("checks"), rows);
  $("checks-problem").hidden = true;
}

function renderQueue(queue) {
  render($("queue"), [
    stat("Queued", `${formatNumber(queue.queued)} of ${formatNumber(queue.max)}`),
    stat("Running", `${formatNumber(queue.running)} (${queue.concurrency} at once)`),
    stat("Oldest queued", queue.queued ? formatSeconds(queue.oldest_queued_age_s) : "none"),
    stat("Succeeded", formatNumber(queue.counts.succeeded || 0)),
    stat("Failed", formatNumber(queue.counts.failed || 0)),
    stat("Cancelled", formatNumber(queue.counts.cancelled || 0)),
  ]);
}

/** Show or hide a section's "nothing here" line (restoring its text after a load problem). */
function emptyHint(id, empty) {
  const hint = $(id);
  if (hint.dataset.text) hint.textContent = hint.dataset.text;
  hint.hidden = !empty;
}

function renderActive(queued, running) {
  const jobs = [...running.data, ...queued.data].sort((a, b) => a.created_at.localeCompare(b.created_at));
  emptyHint("active-empty", jobs.length === 0);
  $("active-table").hidden = jobs.length === 0;
  render(
    $("active"),
    jobs.map((job) =>
      el(
        "tr",
        {},
        el("td", {}, el("code", { title: job.id }, shortId(job.id))),
        el("td", {}, job.client || "—"),
        el("td", {}, job.status),
        el("td", {}, age(job.created_at)),
        el(
          "td",
          { class: "wrap" },
          job.status === "running" ? `sentence ${job.sentences_done} of ${job.sentences_total}` : job.error || "waiting",
        ),
        el(
          "td",
          {},
          job.status === "queued"
            ? el(
                "button",
                { type: "button", class: "small", "data-key": `cancel:${job.id}`, "aria-label": `Cancel job ${shortId(job.id)}`, onclick: () => cancelJob(job.id) },
                "Cancel",
              )
            : "—",
        ),
      ),
    ),
  );
}

function renderFailed(failed) {
  emptyHint("failed-empty", failed.data.length === 0);
  $("failed-table").hidden = failed.data.length === 0;
  render(
    $("failed"),
    failed.data.map((job) =>
      el(
        "tr",
        {},
        el("td", {}, el("code", { title: job.id }, shortId(job.id))),
        el("td", {}, job.finished_at ? formatTime(new Date(job.finished_at)) : "—"),
        el("td", { class: "wrap" }, el("strong", {}, job.error_reason || "failed"), job.error ? `: ${job.error}` : ""),
        el("td", {}, String(job.attempts)),
        el(
          "td",
          {},
          el(
            "button",
            { type: "button", class: "small", "data-key": `retry:${job.id}`, "aria-label": `Retry job ${shortId(job.id)}`, onclick: () => retryJob(job.id) },
            "Retry",
          ),
        ),
      ),
    ),
  );
}

function renderCache(cache, ratio) {
  state.cache = cache;
  const share = cache.max_bytes ? ` of ${formatBytes(cache.max_bytes)}` : "";
  render($("cache"), [
    stat("Entries", formatNumber(cache.entries)),
    stat("Size", `${formatBytes(cache.size_bytes)}${share}`),
    stat("Hit ratio", ratio.ratio === null ? "no lookups yet" : `${(ratio.ratio * 100).toFixed(1)} %`),
    stat("Hits / misses", `${formatNumber(ratio.hits)} / ${formatNumber(ratio.misses)}`),
    stat("Evictions", formatNumber(cache.evictions)),
  ]);
  $("purge").disabled = cache.entries === 0;
}

function renderErrors(errors) {
  emptyHint("errors-empty", errors.data.length === 0);
  $("errors-table").hidden = errors.data.length === 0;
  render(
    $("errors"),
    errors.data.map((entry) =>
      el(
        "tr",
        {},
        el("td", {}, formatTime(new Date(entry.time * 1000))),
        el("td", {}, el("span", { class: `badge ${entry.level === "WARNING" ? "warn" : "fail"}` }, entry.level.toLowerCase())),
        el("td", {}, el("code", {}, entry.logger)),
        el("td", { class: "wrap" }, entry.message, entry.request_id ? el("span", { class: "hint" }, ` (request ${entry.request_id})`) : ""),
      ),
    ),
  );
}

function renderLinks(links) {
  const names = { grafana: "Grafana", prometheus: "Prometheus", alertmanager: "Alertmanager", runbooks: "Runbooks" };
  const items = Object.entries(names)
    .filter(([key]) => links[key])
    .map(([key, label]) => el("li", {}, el("a", { href: links[key], rel: "noopener" }, label)));
  render(
    $("links"),
    items.length
      ? items
      : [el("li", { class: "hint" }, "No monitoring links configured (EF_GRAFANA_URL, EF_PROMETHEUS_URL, EF_ALERTMANAGER_URL, EF_RUNBOOKS_URL).")],
  );
}

/** Say in the section itself that its data could not be loaded (the rest keeps working). */
function sectionFailed(name, error) {
  const message = `Could not load: ${error.message}`;
  const target = $(PROBLEM_TARGETS[name]);
  if (target.tagName === "DL") {
    render(target, [stat("Problem", message)]);
  } else if (target.tagName === "UL") {
    render(target, [el("li", { class: "hint" }, message)]);
  } else {
    if (!target.dataset.text) target.dataset.text = target.textContent;
    target.textContent = message;
    target.hidden = false;
  }
}

const PROBLEM_TARGETS = {
  health: "checks-problem",
  queue: "queue",
  active: "active-empty",
  failed: "failed-empty",
  cache: "cache",
  errors: "errors-empty",
  links: "links",
};

async function refresh() {
  clearTimeout(state.timer);
  const jobs = (status) => admin(`jobs?status=${status}&limit=50`);
  const parts = {
    health: Promise.all([healthOf("/health"), healthOf("/health/ready")]),
    queue: admin("queue"),
    active: Promise.all([jobs("queued"), jobs("running")]),
    failed: admin("jobs/failed?limit=50"),
    cache: Promise.all([admin("cache"), admin("cache/hit-ratio")]),
    errors: admin("errors?limit=30"),
  };
  if (!state.linksShown) parts.links = admin("links"); // configuration: once is enough
  const names = Object.keys(parts);
  const results = await Promise.allSettled(Object.values(parts));
  const denied = results.find((r) => r.status === "rejected" && r.reason instanceof ApiError && r.reason.status === 403);
  if (denied) {
    forbidden(denied.reason);
    return;
  }
  const unauthorized = results.find((r) => r.status === "rejected" && r.reason instanceof ApiError && r.reason.status === 401);
  if (unauthorized) {
    askForToken(unauthorized.reason);
    return;
  }
  tokenForm.hidden = true;
  const renderers = {
    health: ([health, ready]) => renderHealth(health, ready),
    queue: renderQueue,
    active: ([queued, running]) => renderActive(queued, running),
    failed: renderFailed,
    cache: ([cache, ratio]) => renderCache(cache, ratio),
    errors: renderErrors,
    links: renderLinks,
  };
  results.forEach((result, index) => {
    const name = names[index];
    if (result.status === "rejected") {
      sectionFailed(name, result.reason);
      return;
    }
    renderers[name](result.value);
    if (name === "links") state.linksShown = true;
  });
  updated.textContent = `Updated ${new Date().toLocaleTimeString()}; ${state.paused ? "updates paused" : `refreshes every ${REFRESH_MS / 1000} s`}.`;
  document.documentElement.dataset.ready = "true";
  schedule();
}

function schedule() {
  clearTimeout(state.timer);
  if (!state.paused && !state.forbidden) state.timer = setTimeout(refresh, REFRESH_MS);
}

async function act(label, request, done) {
  errorEl.hidden = true;
  try {
    const result = await request();
    say(done(result));
  } catch (error) {
    showError(`${label}: ${error.message}`);
  }
  await refresh();
}

function retryJob(id) {
  return act(
    `Retry of job ${shortId(id)}`,
    () => admin(`jobs/${encodeURIComponent(id)}/retry`, { method: "POST" }),
    (job) => `Job ${shortId(id)} is ${job.status} again.`,
  ).then(() => $("failed-title").focus());
}

function cancelJob(id) {
  return act(
    `Cancelling job ${shortId(id)}`,
    () => admin(`jobs/${encodeURIComponent(id)}`, { method: "DELETE" }),
    () => `Job ${shortId(id)} cancelled.`,
  ).then(() => $("queue-title").focus());
}

$("purge").addEventListener("click", () => {
  const cache = state.cache;
  $("purge-text").textContent = cache
    ? `This deletes all ${formatNumber(cache.entries)} cached audio files (${formatBytes(cache.size_bytes)}). Jobs keep their records; each text is synthesised again the next time it is asked for.`
    : "This deletes every cached audio file.";
  purgeDialog.returnValue = "";
  purgeDialog.showModal();
});
purgeDialog.addEventListener("close", () => {
  if (purgeDialog.returnValue !== "purge") {
    say("The cache was kept.");
    $("purge").focus();
    return;
  }
  act("Purging the cache", () => admin("cache", { method: "DELETE" }), (result) => `Cache purged: ${formatNumber(result.removed)} entries removed.`).then(() =>
    $("cache-title").focus(),
  );
});
tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_STORAGE, tokenInput.value.trim());
  tokenInput.value = "";
  say("Trying the admin token…");
  refresh();
});
$("refresh").addEventListener("click", () => {
  refresh();
  say("Refreshed.");
});
pauseButton.addEventListener("click", () => {
  state.paused = !state.paused;
  pauseButton.setAttribute("aria-pressed", String(state.paused));
  pauseButton.textContent = state.paused ? "Resume updates" : "Pause updates";
  say(state.paused ? "Updates paused." : "Updates resumed.");
  if (state.paused) clearTimeout(state.timer);
  else refresh();
});
document.addEventListener("visibilitychange", () => {
  if (document.hidden) clearTimeout(state.timer);
  else if (!state.paused) refresh();
});
for (const id of ["failed-title", "queue-title", "cache-title"]) $(id).tabIndex = -1;

refresh();
