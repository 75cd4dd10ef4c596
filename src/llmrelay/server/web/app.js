// llmrelay web chat: talks to this server's OpenAI-compatible API (no external resources).
"use strict";

const KEY_STORAGE = "llmrelay.serverKey";
const $ = (id) => document.getElementById(id);
const ui = {
  model: $("model"), log: $("log"), error: $("error"), keyForm: $("key-form"), key: $("key"),
  form: $("chat-form"), prompt: $("prompt"), send: $("send"), stop: $("stop"), newChat: $("new-chat"),
};
let history = [];       // [{role, content}] sent with every request (OpenAI clients are stateless)
let controller = null;  // AbortController of the answer being streamed
let retry = null;       // what to do once a key has been entered

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function askForKey(then) {
  retry = then;
  ui.keyForm.hidden = false;
  ui.key.focus();
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return "HTTP " + response.status;
}

async function loadModels() {
  let response;
  try {
    response = await fetch("/v1/models", { headers: headers() });
  } catch (err) {
    showError("cannot reach the server: " + err.message);
    return;
  }
  if (response.status === 401) { askForKey(loadModels); return; }
  if (!response.ok) { showError("models: " + (await errorMessage(response))); return; }
  const list = (await response.json()).data || [];
  const previous = ui.model.value;
  ui.model.replaceChildren(...list.map((m) => {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = m.owned_by && !m.id.startsWith(m.owned_by + ":") ? `${m.id} (${m.owned_by})` : m.id;
    return option;
  }));
  if (previous && list.some((m) => m.id === previous)) ui.model.value = previous;
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  div.appendChild(span);
  ui.log.appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function setMeta(div, text) {
  let meta = div.querySelector(".meta");
  if (!meta) { meta = document.createElement("span"); meta.className = "meta"; div.appendChild(meta); }
  meta.textContent = text;
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
}

// Parse an SSE body: yields each event's data (multi-line data joined with "\n").
async function* sseData(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, ""));
        if (data.length) yield data.join("\n");
      }
    }
  } finally {
    if (signal.aborted) reader.cancel().catch(() => {});
  }
}

async function sendTurn(text) {
  showError("");
  const turn = [...history, { role: "user", content: text }];
  const userDiv = addMessage("user", text);
  const answerDiv = addMessage("assistant", "");
  const answer = answerDiv.querySelector(".text");
  answerDiv.classList.add("streaming");
  controller = new AbortController();
  setBusy(true);
  let got = "";
  let finished = false;
  const fail = (message) => {
    showError(message);
    if (!got) {               // nothing arrived: forget the turn, give the text back
      userDiv.remove(); answerDiv.remove();
      ui.prompt.value = text;
    } else {
      setMeta(answerDiv, "interrupted");
    }
  };
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      signal: controller.signal,
      body: JSON.stringify({
        model: ui.model.value || undefined, messages: turn, stream: true,
        stream_options: { include_usage: true },
      }),
    });
    if (response.status === 401) {
      userDiv.remove(); answerDiv.remove();
      askForKey(() => sendTurn(text));
      return;
    }
    if (!response.ok) { fail(await errorMessage(response)); return; }
    for await (const data of sseData(response.body, controller.signal)) {
      if (data === "[DONE]") { finished = true; break; }
      let chunk;
      try { chunk = JSON.parse(data); } catch (_) { continue; }
      if (chunk.error) { fail(chunk.error.message || "the stream failed"); return; }
      if (chunk.model) setMeta(answerDiv, chunk.model);
      for (const choice of chunk.choices || []) {
        const piece = choice.delta && choice.delta.content;
        if (piece) { got += piece; answer.textContent = got; answerDiv.scrollIntoView({ block: "end" }); }
      }
    }
    if (!finished) { fail("the stream ended early"); return; }
    history = [...turn, { role: "assistant", content: got }];
  } catch (err) {
    if (err.name === "AbortError") {
      setMeta(answerDiv, "stopped");
      if (got) history = [...turn, { role: "assistant", content: got }];
      else { userDiv.remove(); answerDiv.remove(); ui.prompt.value = text; }
    } else {
      fail("request failed: " + err.message);
    }
  } finally {
    answerDiv.classList.remove("streaming");
    controller = null;
    setBusy(false);
  }
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.prompt.value.trim();
  if (!text || controller) return;
  ui.prompt.value = "";
  sendTurn(text);
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); ui.form.requestSubmit(); }
});
ui.stop.addEventListener("click", () => { if (controller) controller.abort(); });
ui.newChat.addEventListener("click", () => {
  if (controller) controller.abort();
  history = []; ui.log.replaceChildren(); showError("");
});
ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.key.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  ui.key.value = "";
  ui.keyForm.hidden = true;
  showError("");
  const then = retry; retry = null;
  if (then) then();
  if (then !== loadModels && ui.model.options.length <= 1 && !ui.model.value) loadModels();
});

loadModels();
