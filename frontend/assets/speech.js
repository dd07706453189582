// The speech page: text in, audio out, with the server's limits, voices, progress and history.
//
// Playback of long texts: MP3 is requested with `stream: true` and fed to a MediaSource as the
// sentences arrive, so it starts after the first sentence (Chromium, Firefox, Edge and desktop
// Safari support MediaSource with audio/mpeg). Other formats, and browsers without it, get the
// whole file first. Progress comes from the job: the page joins the request's job (POST
// /api/v1/jobs with the same body joins the identical active job) when the answer takes longer
// than a moment, and polls it for its queue position and sentence count.
import {
  ApiError,
  apiError,
  el,
  formatNumber,
  formatSeconds,
  formatTime,
  getJSON,
  retryText,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const form = $("speak-form");
const textBox = $("text");
const counter = $("counter");
const voiceSelect = $("voice");
const voiceInfo = $("voice-info");
const speedInput = $("speed");
const speedHint = $("speed-hint");
const formatSelect = $("format");
const formatHint = $("format-hint");
const keyBox = $("key-box");
const keyInput = $("api-key");
const speakButton = $("speak");
const cancelButton = $("cancel");
const progressBox = $("progress-box");
const progressBar = $("progress");
const progressText = $("progress-text");
const statusEl = $("status");
const errorEl = $("error");
const player = $("player");
const downloadLink = $("download");
const historyList = $("history");
const historyEmpty = $("history-empty");
const clearHistoryButton = $("clear-history");

const KEY_STORAGE = "echoforge.apiKey";
const SETTINGS_STORAGE = "echoforge.settings";
const HISTORY_STORAGE = "echoforge.history";
const HISTORY_MAX = 20;
const JOIN_AFTER_MS = 700; // a cache hit answers sooner; past this, follow the job
// Polls count against the rate limit (EF_RATE_LIMIT, 120 a minute by default): every second
// at first, every 3 s once a synthesis has taken a while.
const POLL_MS = 1000;
const POLL_SLOW_MS = 3000;
const POLL_SLOW_AFTER_MS = 15_000;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const MEDIA_TYPES = {
  mp3: "audio/mpeg",
  wav: "audio/wav",
  opus: "audio/ogg; codecs=opus",
  flac: "audio/flac",
  aac: "audio/aac",
};

const state = { limits: null, voices: [], busy: null, playerUrl: null, downloadUrl: null };

// --- small helpers -------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function chars(text) {
  return [...text].length; // code points, as the server counts them
}

function headers(json = true) {
  const result = json ? { "Content-Type": "application/json" } : {};
  const key = keyInput.value.trim();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

function say(message) {
  statusEl.textContent = message;
}

function canStream(format) {
  return (
    format === "mp3" &&
    Boolean(state.limits && state.limits.stream_formats.includes("mp3")) &&
    typeof MediaSource !== "undefined" &&
    MediaSource.isTypeSupported("audio/mpeg")
  );
}

function voiceLabel(id) {
  const voice = state.voices.find((v) => v.id === id);
  if (!voice) return id || "default voice";
  return voice.language ? `${voice.name} (${voice.language})` : voice.name;
}

export function fileName(request) {
  const words = request.text
    .normalize("NFKD")
    .replace(/[^\p{L}\p{N}\s-]/gu, "")
    .trim()
    .split(/\s+/)
    .slice(0, 6)
    .join("-")
    .toLowerCase()
    .slice(0, 48)
    .replace(/-+$/, "");
  const voice = (request.voice || "default").replace(/[^\w.-]/g, "");
  return `echoforge-${words || "speech"}-${voice}.${request.format}`;
}

// --- limits, voices, formats ----------------------------------------------------------------

function updateCounter() {
  const count = chars(textBox.value);
  const max = state.limits ? state.limits.max_text_chars : null;
  if (max === null) {
    counter.textContent = `${formatNumber(count)} characters`;
    return;
  }
  const over = count - max;
  counter.textContent =
    over > 0
      ? `${formatNumber(count)} / ${formatNumber(max)} characters: ${formatNumber(over)} too many`
      : `${formatNumber(count)} / ${formatNumber(max)} characters`;
  counter.classList.toggle("over", over > 0);
  textBox.setAttribute("aria-invalid", over > 0 ? "true" : "false");
}

function savedSettings() {
  try {
    return JSON.parse(localStorage.getItem(SETTINGS_STORAGE) || "{}");
  } catch {
    return {};
  }
}

function saveSettings() {
  const settings = { voice: voiceSelect.value, speed: speedInput.value, format: formatSelect.value };
  localStorage.setItem(SETTINGS_STORAGE, JSON.stringify(settings));
}

function fillFormats() {
  const saved = savedSettings();
  const formats = state.limits.formats.filter(
    (f) => MEDIA_TYPES[f] && player.canPlayType(MEDIA_TYPES[f]) !== "",
  );
  formatSelect.replaceChildren(
    ...formats.map((f) => el("option", { value: f }, f === "opus" ? "Opus (Ogg)" : f.toUpperCase())),
  );
  const preferred = formats.includes(saved.format) ? saved.format : canStream("mp3") ? "mp3" : "wav";
  formatSelect.value = formats.includes(preferred) ? preferred : formats[0];
  updateFormatHint();
}

function updateFormatHint() {
  formatHint.textContent = canStream(formatSelect.value)
    ? "Plays while the rest is still being synthesised."
    : "Plays once the whole text is synthesised.";
}

async function loadLimits() {
  try {
    state.limits = await getJSON("/api/v1/limits");
  } catch (error) {
    showError({
      title: "The server's limits could not be read.",
      detail: `${describe(error)} Reload the page once the server is back.`,
    });
    return;
  }
  speedInput.min = String(state.limits.min_speed);
  speedInput.max = String(state.limits.max_speed);
  speedHint.textContent = `1 is normal; ${state.limits.min_speed} to ${state.limits.max_speed}.`;
  const saved = savedSettings();
  if (saved.speed) speedInput.value = saved.speed;
  if (state.limits.api_key_required && !keyInput.value) keyBox.open = true;
  fillFormats();
  updateCounter();
}

async function loadVoices() {
  let body;
  try {
    body = await getJSON("/api/v1/voices");
  } catch (error) {
    voiceSelect.replaceChildren(el("option", { value: "" }, "Server default"));
    voiceInfo.textContent = `Voices could not be loaded: ${describe(error)}`;
    return;
  }
  state.voices = body.data;
  voiceSelect.replaceChildren(
    ...body.data.map((v) =>
      el("option", { value: v.id }, `${voiceLabel(v.id)}${v.id === body.default ? ", default" : ""}`),
    ),
  );
  const saved = savedSettings().voice;
  voiceSelect.value = body.data.some((v) => v.id === saved) ? saved : body.default || "";
  updateVoiceInfo();
}

function updateVoiceInfo() {
  const voice = state.voices.find((v) => v.id === voiceSelect.value);
  if (!voice) {
    voiceInfo.textContent = "";
    return;
  }
  const parts = [`Language: ${voice.language || "not stated"}`];
  if (voice.sample_rate) parts.push(`${formatNumber(voice.sample_rate)} Hz`);
  parts.push(`engine ${voice.engine}`);
  voiceInfo.textContent = parts.join(" · ");
}

// --- errors ---------------------------------------------------------------------------------

function describe(error) {
  if (error instanceof ApiError) return `${error.message}`;
  if (error instanceof TypeError) return "the server could not be reached.";
  return String(error);
}

function clearError() {
  errorEl.hidden = true;
  errorEl.replaceChildren();
}

function showError({ title, detail, focus = null }) {
  errorEl.replaceChildren(el("strong", {}, title), el("p", {}, detail));
  errorEl.hidden = false;
  say("Not spoken. Your text is still in the text box.");
  if (focus) focus.focus();
}

/** What happened and what to do, for each error the API can answer with. */
function explain(error) {
  if (error instanceof ApiError) {
    const wait = retryText(error.retryAfter);
    switch (error.code) {
      case "unauthorized":
        keyBox.open = true;
        return {
          title: keyInput.value.trim() ? "The API key was not accepted." : "An API key is needed.",
          detail: keyInput.value.trim()
            ? "The key under “API key” is wrong. Check it, then press Speak again."
            : "This server only speaks for clients with a key. Enter yours under “API key”, then press Speak again.",
          focus: keyInput,
        };
      case "queue_full":
        return {
          title: "The server is busy: its queue is full.",
          detail: `Your text was not queued. Try again ${wait}.`,
        };
      case "engine_unavailable":
        return {
          title: "The speech engine is not available.",
          detail:
            `It is down or still loading its voice. Try again ${wait}. ` +
            (error.body && error.body.job_id
              ? "Your text stays queued and is spoken once the engine is back. "
              : "") +
            `(Server: ${error.message})`,
        };
      case "rate_limited":
        return { title: "Too many requests.", detail: `Try again ${wait}.` };
      case "unknown_voice":
        loadVoices();
        return { title: "That voice is not available.", detail: `${error.message} Pick another voice.` };
      case "engine_rejected":
        return {
          title: "The speech engine refused this text or voice.",
          detail: `${error.message} Try a shorter text or another voice.`,
        };
      case "synthesis_failed":
        return {
          title: "The synthesis failed.",
          detail: `${error.message} Try again; if it keeps failing, tell the operator.`,
        };
      case "invalid_input":
        return {
          title: "The server did not accept this request.",
          detail: `${error.message} Change it, then press Speak again.`,
        };
      default:
        return {
          title: `The server answered ${error.status}.`,
          detail: `${error.message} Try again ${wait}.`,
        };
    }
  }
  if (error instanceof TypeError) {
    return {
      title: "The EchoForge server could not be reached, or the answer broke off.",
      detail: "Check the connection, then press Speak again.",
    };
  }
  return { title: "Something went wrong.", detail: String(error) };
}

/** Problems the page can see before asking the server (it knows the server's limits). */
function checkLocally(request) {
  if (!request.text.trim()) {
    return { title: "There is nothing to speak.", detail: "Type some text first.", focus: textBox };
  }
  const limits = state.limits;
  if (limits && chars(request.text) > limits.max_text_chars) {
    const count = chars(request.text);
    return {
      title: "The text is too long.",
      detail:
        `It has ${formatNumber(count)} characters; this server accepts at most ` +
        `${formatNumber(limits.max_text_chars)}. Shorten it by ` +
        `${formatNumber(count - limits.max_text_chars)} characters or split it in parts.`,
      focus: textBox,
    };
  }
  if (limits && !(request.speed >= limits.min_speed && request.speed <= limits.max_speed)) {
    return {
      title: "The speed is out of range.",
      detail: `Choose a speed from ${limits.min_speed} to ${limits.max_speed} (1 is normal).`,
      focus: speedInput,
    };
  }
  return null;
}

// --- playback -------------------------------------------------------------------------------

function setPlayerSource(url) {
  if (state.playerUrl) URL.revokeObjectURL(state.playerUrl);
  state.playerUrl = url;
  player.src = url;
  player.hidden = false;
}

function setDownload(blob, name) {
  if (state.downloadUrl) URL.revokeObjectURL(state.downloadUrl);
  state.downloadUrl = URL.createObjectURL(blob);
  downloadLink.href = state.downloadUrl;
  downloadLink.download = name;
  downloadLink.textContent = `Download ${name}`;
  downloadLink.hidden = false;
}

function appendTo(buffer, data) {
  return new Promise((resolve, reject) => {
    const done = () => {
      buffer.removeEventListener("error", failed);
      resolve();
    };
    const failed = () => {
      buffer.removeEventListener("updateend", done);
      reject(new Error("the browser could not decode the audio stream."));
    };
    buffer.addEventListener("updateend", done, { once: true });
    buffer.addEventListener("error", failed, { once: true });
    buffer.appendBuffer(data);
  });
}

/** Feed the streamed MP3 to a MediaSource as it arrives; resolves with the whole file. */
async function playStream(response, run) {
  const source = new MediaSource();
  setPlayerSource(URL.createObjectURL(source));
  await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
  const buffer = source.addSourceBuffer("audio/mpeg");
  const reader = response.body.getReader();
  const chunks = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    await appendTo(buffer, value);
    if (run.firstAudio === null) {
      run.firstAudio = performance.now();
      player.play().catch(() => undefined);
      say("Playing while the rest is synthesised…");
    }
  }
  if (source.readyState === "open") source.endOfStream();
  return new Blob(chunks, { type: "audio/mpeg" });
}

function playBlob(blob, run) {
  setPlayerSource(URL.createObjectURL(blob));
  run.firstAudio = performance.now();
  player.play().catch(() => undefined);
}

// --- progress -------------------------------------------------------------------------------

function showProgress(text, done = null, total = null) {
  progressBox.hidden = false;
  progressText.textContent = text;
  if (total) {
    progressBar.max = total;
    progressBar.value = done;
  } else {
    progressBar.removeAttribute("value"); // indeterminate
  }
}

function hideProgress() {
  progressBox.hidden = true;
}

function ordinal(n) {
  const suffix = n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th";
  return `${n}${suffix}`;
}

function showJob(job, run) {
  const waited = (performance.now() - run.started) / 1000;
  if (job.status === "queued") {
    const where = job.queue_position ? `${ordinal(job.queue_position)} in line` : "waiting";
    const why = job.error ? ` ${job.error}` : "";
    showProgress(`Queued: ${where} (${formatSeconds(waited)} so far).${why}`);
  } else if (job.status === "running" && job.sentences_total > 0) {
    const current = Math.min(job.sentences_done + 1, job.sentences_total);
    showProgress(
      `Synthesising sentence ${current} of ${job.sentences_total}.`,
      job.sentences_done,
      job.sentences_total,
    );
  } else if (job.status === "running") {
    showProgress("Synthesising…");
  } else if (job.status === "succeeded" && job.sentences_total > 0) {
    showProgress(`All ${job.sentences_total} sentences synthesised.`, job.sentences_total, job.sentences_total);
  }
}

/** Poll the job until it ends or the run is over; returns the last state seen. */
async function follow(run, jobId) {
  if (run.jobId) return run.lastJob;
  run.jobId = jobId;
  player.dataset.jobId = jobId;
  while (!run.over) {
    let wait = performance.now() - run.started > POLL_SLOW_AFTER_MS ? POLL_SLOW_MS : POLL_MS;
    try {
      run.lastJob = await getJSON(`/api/v1/jobs/${encodeURIComponent(jobId)}`, {
        headers: headers(false),
        signal: run.controller.signal,
      });
      if (run.over) break;
      showJob(run.lastJob, run);
      if (TERMINAL.has(run.lastJob.status)) break;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 429)) return run.lastJob;
      wait = Math.max(wait, (error.retryAfter || 5) * 1000); // over the rate limit: slow down
    }
    await sleep(wait);
  }
  return run.lastJob;
}

/** Join the request's job (same body, so the server returns the identical active job). */
async function join(run, request) {
  if (run.jobId || run.over) return;
  try {
    const response = await fetch("/api/v1/jobs", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(request),
      signal: run.controller.signal,
    });
    if (!response.ok || run.jobId || run.over) return;
    const job = await response.json();
    follow(run, job.id);
  } catch {
    // The speech request itself reports what went wrong.
  }
}

// --- speaking -------------------------------------------------------------------------------

function readForm() {
  return {
    text: textBox.value,
    voice: voiceSelect.value || null,
    speed: Number(speedInput.value),
    format: formatSelect.value || "wav",
  };
}

function setBusy(busy) {
  const focusWasOnSpeak = document.activeElement === speakButton;
  const focusWasOnCancel = document.activeElement === cancelButton;
  speakButton.disabled = busy;
  speakButton.textContent = busy ? "Speaking…" : "Speak";
  cancelButton.hidden = !busy;
  for (const button of historyList.querySelectorAll("button")) button.disabled = busy;
  if (busy && focusWasOnSpeak) cancelButton.focus();
  if (!busy && focusWasOnCancel) speakButton.focus();
}

async function jobAudio(run, jobId) {
  const job = await follow(run, jobId);
  if (!job || job.status !== "succeeded") {
    throw new ApiError(502, "synthesis_failed", job && job.error ? job.error : `Job ${jobId} did not succeed.`);
  }
  const response = await fetch(`/api/v1/jobs/${encodeURIComponent(jobId)}/audio`, {
    headers: headers(false),
    signal: run.controller.signal,
  });
  if (!response.ok) throw await apiError(response);
  return response.blob();
}

async function speak(request) {
  if (state.busy) return;
  clearError();
  const problem = checkLocally(request);
  if (problem) {
    showError(problem);
    return;
  }
  const run = {
    controller: new AbortController(),
    started: performance.now(),
    firstAudio: null,
    jobId: null,
    lastJob: null,
    cancelled: false,
    over: false,
  };
  state.busy = run;
  setBusy(true);
  downloadLink.hidden = true;
  delete player.dataset.jobId;
  delete player.dataset.cache;
  const streaming = canStream(request.format);
  say("Sending the text…");
  showProgress("Waiting for the server…");
  const joinTimer = setTimeout(() => join(run, request), JOIN_AFTER_MS);
  try {
    let blob;
    let cacheHit = false;
    const response = await fetch("/api/v1/speech", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ ...request, stream: streaming }),
      signal: run.controller.signal,
    });
    if (response.ok) {
      clearTimeout(joinTimer);
      cacheHit = response.headers.get("X-EF-Cache") === "hit";
      const jobId = response.headers.get("X-EF-Job-Id");
      if (jobId) follow(run, jobId);
      blob = streaming ? await playStream(response, run) : await response.blob();
      if (!streaming) playBlob(blob, run);
    } else {
      const error = await apiError(response);
      const jobId = error.body && error.body.job_id;
      if (error.code !== "sync_timeout" || !jobId) throw error;
      say("This takes longer than the server waits for; following the job…");
      blob = await jobAudio(run, jobId);
      playBlob(blob, run);
    }
    finish(run, request, blob, cacheHit);
  } catch (error) {
    if (!run.cancelled) showError(explain(error));
  } finally {
    clearTimeout(joinTimer);
    run.over = true;
    hideProgress();
    state.busy = null;
    setBusy(false);
  }
}

function finish(run, request, blob, cacheHit) {
  const total = (performance.now() - run.started) / 1000;
  const first = run.firstAudio === null ? total : (run.firstAudio - run.started) / 1000;
  player.dataset.cache = cacheHit ? "hit" : "miss";
  setDownload(blob, fileName(request));
  const seconds = formatSeconds(total);
  say(
    cacheHit
      ? `From the cache (already spoken before): ${seconds}.`
      : `Synthesised (not in the cache) in ${seconds}; playback started after ${formatSeconds(first)}.`,
  );
  remember({ ...request, cache: cacheHit ? "hit" : "miss", seconds: total });
}

async function cancel() {
  const run = state.busy;
  if (!run) return;
  run.cancelled = true;
  run.controller.abort();
  player.pause();
  const job = run.lastJob;
  if (run.jobId && (!job || job.status === "queued")) {
    const response = await fetch(`/api/v1/jobs/${encodeURIComponent(run.jobId)}`, {
      method: "DELETE",
      headers: headers(false),
    }).catch(() => null);
    if (response && response.ok) {
      say("Cancelled: the text was taken off the queue.");
      return;
    }
  }
  say(
    run.jobId
      ? "Stopped. The server had already started, so it finishes this text and keeps it in its cache."
      : "Cancelled.",
  );
}

// --- history --------------------------------------------------------------------------------

function loadHistory() {
  try {
    const items = JSON.parse(localStorage.getItem(HISTORY_STORAGE) || "[]");
    return Array.isArray(items) ? items : [];
  } catch {
    return [];
  }
}

function remember(entry) {
  const same = (item) =>
    item.text === entry.text && item.voice === entry.voice && item.speed === entry.speed && item.format === entry.format;
  const items = [{ ...entry, at: Date.now() }, ...loadHistory().filter((item) => !same(item))];
  localStorage.setItem(HISTORY_STORAGE, JSON.stringify(items.slice(0, HISTORY_MAX)));
  renderHistory();
}

function snippet(text, length = 60) {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

function renderHistory() {
  const items = loadHistory();
  historyEmpty.hidden = items.length > 0;
  clearHistoryButton.hidden = items.length === 0;
  historyList.replaceChildren(
    ...items.map((item) => {
      const short = snippet(item.text, 40);
      const meta = [
        voiceLabel(item.voice),
        `speed ${item.speed}`,
        item.format.toUpperCase(),
        formatTime(new Date(item.at)),
      ].join(" · ");
      return el(
        "li",
        {},
        el("p", { class: "phrase" }, snippet(item.text, 200)),
        el("p", { class: "meta" }, meta),
        el(
          "div",
          { class: "buttons" },
          el("button", { type: "button", class: "small", "aria-label": `Replay “${short}”`, onclick: () => speak(pick(item)) }, "Replay"),
          el("button", { type: "button", class: "small", "aria-label": `Download “${short}”`, onclick: () => download(pick(item)) }, "Download"),
          el("button", { type: "button", class: "small", "aria-label": `Speak again “${short}” from the form`, onclick: () => speakAgain(item) }, "Speak again"),
        ),
      );
    }),
  );
}

function pick(item) {
  return { text: item.text, voice: item.voice, speed: item.speed, format: item.format };
}

/** Put the phrase back in the form (to change it or keep it) and speak it. */
function speakAgain(item) {
  textBox.value = item.text;
  if ([...voiceSelect.options].some((o) => o.value === item.voice)) voiceSelect.value = item.voice || "";
  speedInput.value = String(item.speed);
  if ([...formatSelect.options].some((o) => o.value === item.format)) formatSelect.value = item.format;
  updateCounter();
  updateVoiceInfo();
  updateFormatHint();
  speak(readForm());
}

async function download(request) {
  clearError();
  say("Preparing the download…");
  try {
    const response = await fetch("/api/v1/speech", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(request),
    });
    if (!response.ok) throw await apiError(response);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: fileName(request), hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    say(`Downloaded ${fileName(request)}.`);
  } catch (error) {
    showError(explain(error));
  }
}

// --- wiring ---------------------------------------------------------------------------------

keyInput.value = localStorage.getItem(KEY_STORAGE) || "";
keyInput.addEventListener("input", () => localStorage.setItem(KEY_STORAGE, keyInput.value.trim()));
textBox.addEventListener("input", updateCounter);
voiceSelect.addEventListener("change", () => {
  updateVoiceInfo();
  saveSettings();
});
speedInput.addEventListener("change", saveSettings);
formatSelect.addEventListener("change", () => {
  updateFormatHint();
  saveSettings();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  speak(readForm());
});
cancelButton.addEventListener("click", cancel);
clearHistoryButton.addEventListener("click", () => {
  localStorage.removeItem(HISTORY_STORAGE);
  renderHistory();
  say("History cleared.");
  textBox.focus();
});

renderHistory();
updateCounter();
await loadLimits();
await loadVoices();
renderHistory(); // voice names are known now
document.documentElement.dataset.ready = "true";
