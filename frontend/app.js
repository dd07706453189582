// EchoForge web UI: list voices, send text to the speech API, play the answer.
"use strict";

const form = document.getElementById("speak-form");
const statusEl = document.getElementById("status");
const player = document.getElementById("player");
const voiceSelect = document.getElementById("voice");
const apiKeyInput = document.getElementById("api-key");
const API_KEY_STORAGE = "echoforge.apiKey";

apiKeyInput.value = localStorage.getItem(API_KEY_STORAGE) || "";
apiKeyInput.addEventListener("change", () => {
  localStorage.setItem(API_KEY_STORAGE, apiKeyInput.value.trim());
});

function speechHeaders() {
  const headers = { "Content-Type": "application/json" };
  const key = apiKeyInput.value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

function say(message, isError = false) {
  statusEl.textContent = message;
  statusEl.classList.toggle("error", isError);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || response.statusText;
  } catch {
    return response.statusText;
  }
}

async function loadVoices() {
  const response = await fetch("/api/v1/voices");
  if (!response.ok) {
    say(`Voices unavailable: ${await errorMessage(response)}`, true);
    return;
  }
  const body = await response.json();
  const voices = Array.isArray(body) ? body : body.data || [];
  voiceSelect.replaceChildren(
    ...voices.map((voice) => {
      const option = document.createElement("option");
      option.value = voice.id;
      option.textContent = voice.language ? `${voice.name || voice.id} (${voice.language})` : voice.name || voice.id;
      option.selected = Boolean(voice.default);
      return option;
    }),
  );
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("speak");
  button.disabled = true;
  say("Synthesising…");
  const started = performance.now();
  try {
    const response = await fetch("/api/v1/speech", {
      method: "POST",
      headers: speechHeaders(),
      body: JSON.stringify({
        text: document.getElementById("text").value,
        voice: voiceSelect.value || null,
        speed: Number(document.getElementById("speed").value),
        format: document.getElementById("format").value,
      }),
    });
    if (!response.ok) {
      say(`Error ${response.status}: ${await errorMessage(response)}`, true);
      return;
    }
    const blob = await response.blob();
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(blob);
    player.hidden = false;
    await player.play().catch(() => undefined);
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    say(`Done in ${seconds} s (cache ${response.headers.get("X-EF-Cache") || "?"}).`);
  } catch (error) {
    say(`Network error: ${error}`, true);
  } finally {
    button.disabled = false;
  }
});

loadVoices();
