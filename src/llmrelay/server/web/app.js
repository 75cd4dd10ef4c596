// llmrelay web chat: talks to this server's OpenAI-compatible API; loads nothing from
// elsewhere. Answers are Markdown rendered as sanitised DOM (markdown.js): model output
// is untrusted. Conversations are kept in this browser (store.js).

import { ATTEMPTS_HEADER, KEY_STORAGE, NEEDS_KEY, errorOf, headers, sseData } from "./api.js";
import { imageDataUrl } from "./images.js";
import { StreamView, copyText, markdownFragment } from "./markdown.js";
import { LAST_MODEL_KEY, OPEN_KEY, newChat, storage } from "./store.js";

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"), sidebar: $("sidebar"), chats: $("chats"), storageNote: $("storage-note"),
  scrim: $("scrim"), openSidebar: $("open-sidebar"), closeSidebar: $("close-sidebar"),
  mode: $("mode"), model: $("model"), settingsToggle: $("settings-toggle"), settings: $("settings"),
  system: $("system"), temperature: $("temperature"), maxTokens: $("max-tokens"),
  newChat: $("new-chat"), log: $("log"), error: $("error"), errorText: $("error-text"),
  errorAttempts: $("error-attempts"), retry: $("retry"), keyForm: $("key-form"), key: $("key"),
  form: $("chat-form"), prompt: $("prompt"), send: $("send"), stop: $("stop"),
  attach: $("attach"), file: $("file"), attachments: $("attachments"),
};

// ---------------------------------------------------------------- conversations, kept

function note(text) {
  ui.storageNote.textContent = text;
  ui.storageNote.hidden = !text;
}

ui.log.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const pre = button.closest(".code").querySelector("pre");
  try {
    await copyText(pre.textContent);
    button.textContent = "Copied";
  } catch (_) {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
});

let chat = newChat();    // the open conversation
let streaming = null;    // {controller, chat} while an answer is coming
let retryAction = null;  // what the Retry button does
let keyThen = null;      // what to do once the server key has been entered
let catalogue = { data: [], providers: [] };

const views = new WeakMap();  // message -> its element in the log

function isSaved(c) { return storage.index().some((e) => e.id === c.id); }

// Save a conversation once it has something worth keeping (and not after its deletion).
function keep(c) {
  if (c.deleted || !(c.messages.length || isSaved(c))) return;
  note(storage.save(c));
  if (c === chat) localStorage.setItem(OPEN_KEY, c.id);
  renderList();
}

function renderList() {
  const index = storage.index();
  ui.chats.replaceChildren(...index.map((entry) => {
    const li = document.createElement("li");
    li.dataset.id = entry.id;
    if (entry.id === chat.id) li.className = "current";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = entry.title || "New chat";
    if (entry.id === chat.id) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => { openChat(entry.id); closeSidebar(); });
    const rename = document.createElement("button");
    rename.type = "button";
    rename.className = "icon rename";
    rename.textContent = "✎";
    rename.setAttribute("aria-label", `Rename “${entry.title || "New chat"}”`);
    rename.addEventListener("click", () => startRename(li, entry));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon delete";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Delete “${entry.title || "New chat"}”`);
    remove.addEventListener("click", () => deleteChat(entry));
    li.append(open, rename, remove);
    return li;
  }));
}

function startRename(li, entry) {
  const input = document.createElement("input");
  input.type = "text";
  input.className = "rename-input";
  input.value = entry.title;
  input.setAttribute("aria-label", "New name");
  li.replaceChildren(input);
  input.focus();
  input.select();
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title) {
      const target = entry.id === chat.id ? chat : storage.load(entry.id);
      if (target) { target.title = title; target.titleSet = true; note(storage.save(target)); }
    }
    renderList();
    const button = ui.chats.querySelector(`li[data-id="${CSS.escape(entry.id)}"] .rename`);
    if (button) button.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); finish(true); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
}

function deleteChat(entry) {
  if (!confirm(`Delete “${entry.title || "New chat"}”?`)) return;
  if (streaming && streaming.chat.id === entry.id) {
    streaming.chat.deleted = true;
    streaming.controller.abort();
  }
  if (entry.id === chat.id) chat.deleted = true;
  storage.remove(entry.id);
  if (entry.id === chat.id) {
    const next = storage.index()[0];
    if (next) openChat(next.id); else showChat(newChat());
  }
  renderList();
}

function openChat(id) {
  if (id === chat.id) return;
  const loaded = storage.load(id);
  if (!loaded) return;
  if (streaming) streaming.controller.abort();
  showChat(loaded);
}

function showChat(c) {
  flushSettings();
  for (const m of c.messages) if (m.status === "streaming") m.status = "interrupted";  // closed mid-answer
  chat = c;
  if (isSaved(c)) localStorage.setItem(OPEN_KEY, c.id); else localStorage.removeItem(OPEN_KEY);
  showError(null);
  ui.system.value = c.system || "";
  ui.temperature.value = c.temperature ?? "";
  ui.maxTokens.value = c.maxTokens ?? "";
  ui.mode.value = c.mode || "chat";
  fillModels();
  ui.log.replaceChildren(...c.messages.map((m) => messageView(m)));
  const last = ui.log.lastElementChild;
  if (last) last.scrollIntoView({ block: "end" });
  markRetry();
  renderList();
}

function startNewChat() {
  if (streaming) streaming.controller.abort();
  if (!chat.messages.length && !isSaved(chat)) { ui.prompt.focus(); return; }
  const c = newChat();
  c.mode = chat.mode;
  c.model = chat.model;
  showChat(c);
  ui.prompt.focus();
}

// ---------------------------------------------------------------- messages

function messageView(m) {
  const div = document.createElement("article");
  div.className = "msg " + m.role;
  const body = document.createElement("div");
  body.className = "content";
  div.appendChild(body);
  if (m.role === "user") {
    body.textContent = m.content;
    if (m.images && m.images.length) body.prepend(thumbnails(m.images));
  } else if (m.kind === "image") {
    showImage(body, m);
  } else {
    body.appendChild(markdownFragment(m.content || ""));
  }
  if (m.role === "assistant") setMeta(div, m);
  views.set(m, div);
  return div;
}

function thumbnails(images) {
  const strip = document.createElement("div");
  strip.className = "thumbs";
  for (const url of images) {
    const img = document.createElement("img");
    img.alt = url ? "Attached image" : "(an attached image that was not kept)";
    if (url) img.src = url;
    strip.appendChild(img);
  }
  return strip;
}

function showImage(body, m) {
  if (m.image) {
    const img = document.createElement("img");
    img.src = m.image;
    img.alt = "Generated image: " + (m.prompt || "");
    img.className = "generated";
    body.replaceChildren(img);
  } else {
    body.textContent = m.imageDropped ? "(the image was not kept: browser storage was full)" : "";
  }
}

function providerLabel(name) {
  const p = catalogue.providers.find((x) => x.name === name);
  return p ? p.label : name;
}

function setMeta(div, m) {
  let meta = div.querySelector(".meta");
  if (!meta) {
    meta = document.createElement("div");
    meta.className = "meta";
    div.appendChild(meta);
  }
  const parts = [];
  if (m.provider) parts.push(`${providerLabel(m.provider)} · ${m.model || ""}`);
  else if (m.requested) parts.push(m.requested);
  if (m.status === "stopped") parts.push("stopped");
  if (m.status === "interrupted") parts.push("interrupted");
  if (m.usage && m.usage.completion_tokens) {
    parts.push(`${m.usageEstimated ? "≈" : ""}${m.usage.completion_tokens} tokens`);
  }
  const line = document.createElement("span");
  line.className = "who";
  line.textContent = parts.join(" · ");
  const children = [line];
  if (m.error) {
    const err = document.createElement("div");
    err.className = "msg-error";
    err.textContent = m.error;
    children.push(err);
  }
  const failed = (m.attempts || []).filter((a) => a.outcome !== "ok");
  if (failed.length) {
    const details = document.createElement("details");
    details.className = "attempts";
    const summary = document.createElement("summary");
    summary.textContent = `fallback: ${m.attempts.length} attempts`;
    const list = document.createElement("ol");
    for (const a of m.attempts) {
      const li = document.createElement("li");
      const what = a.outcome === "ok" ? "answered" : `${a.outcome}${a.error_type ? ": " + a.error_type : ""}`;
      li.textContent = `${a.provider}:${a.model} — ${what}${a.message ? " — " + a.message : ""}`;
      list.appendChild(li);
    }
    details.append(summary, list);
    children.push(details);
  }
  meta.replaceChildren(...children);
}

// The last answer offers Retry (a new answer to the same question); so does a last
// question left without an answer (the page was closed while it was coming).
function markRetry() {
  for (const b of ui.log.querySelectorAll("button.regenerate")) {
    const meta = b.parentElement;
    b.remove();
    if (!meta.childElementCount && meta.closest(".msg.user")) meta.remove();
  }
  const last = ui.log.lastElementChild;
  if (!last || streaming) return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "regenerate";
  button.textContent = "Retry";
  button.setAttribute("aria-label", "Retry: answer the last message again");
  button.addEventListener("click", regenerate);
  if (last.classList.contains("assistant")) {
    last.querySelector(".meta .who").after(button);
  } else {
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.appendChild(button);
    last.appendChild(meta);
  }
}

function scrollToEnd(div) {
  const log = ui.log;
  if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) div.scrollIntoView({ block: "end" });
}

// ---------------------------------------------------------------- the server

function showError(error, retry) {
  retryAction = retry || null;
  if (!error) { ui.error.hidden = true; return; }
  ui.errorText.textContent = error.message;
  const attempts = error.attempts || [];
  ui.errorAttempts.replaceChildren(...attempts.map((a) => {
    const li = document.createElement("li");
    li.textContent = `${a.provider}:${a.model} — ${a.outcome}${a.error_type ? ": " + a.error_type : ""}${a.message ? " — " + a.message : ""}`;
    return li;
  }));
  ui.errorAttempts.hidden = !attempts.length;
  ui.retry.hidden = !retryAction;
  ui.error.hidden = false;
}

function askForKey(then) {
  keyThen = then;
  ui.keyForm.hidden = false;
  ui.key.focus();
}

async function loadModels() {
  let response;
  try {
    response = await fetch("/v1/models", { headers: headers() });
  } catch (err) {
    showError({ message: "cannot reach the server: " + err.message }, loadModels);
    return;
  }
  if (response.status === 401) { askForKey(loadModels); return; }
  if (!response.ok) { showError({ message: "models: " + (await errorOf(response)).message }, loadModels); return; }
  const body = await response.json();
  catalogue = { data: body.data || [], providers: body.providers || [] };
  ui.mode.hidden = !catalogue.data.some((m) => m.kind === "image");
  fillModels();
  for (const m of chat.messages) {
    const div = views.get(m);
    if (m.role === "assistant" && div && div.isConnected) setMeta(div, m);
  }
  markRetry();
}

// The picker: the models of the conversation's mode, grouped by provider (aliases
// apart); a provider that needs a key the server lacks is marked and cannot be picked.
function fillModels() {
  const mode = chat.mode || "chat";
  const models = catalogue.data.filter((m) => (m.kind || "chat") === mode);
  if (!catalogue.data.length) return;
  const groups = [];
  const aliases = models.filter((m) => m.alias_of);
  if (aliases.length) groups.push({ label: "Aliases", ready: true, models: aliases });
  const known = new Set(catalogue.providers.map((p) => p.name));
  const providers = [...catalogue.providers];
  for (const m of models) {
    if (!m.alias_of && !known.has(m.provider)) { known.add(m.provider); providers.push({ name: m.provider, label: m.provider, key_set: true, auth: "none" }); }
  }
  for (const p of providers) {
    const own = models.filter((m) => !m.alias_of && m.provider === p.name);
    if (!own.length) continue;
    const ready = own.some((m) => m.ready !== false);
    const label = ready ? `${p.label} (${p.name})`
      : `${p.label} — needs a key on the server${p.env_var ? " (" + p.env_var + ")" : ""}`;
    groups.push({ label, ready, models: own });
  }
  ui.model.replaceChildren(...groups.map((g) => {
    const group = document.createElement("optgroup");
    group.label = g.label;
    if (!g.ready) group.className = "no-key";
    for (const m of g.models) {
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = m.id;
      if (m.alias_of) option.title = m.alias_of.join(" → ");
      option.disabled = m.ready === false;
      group.appendChild(option);
    }
    return group;
  }));
  const usable = models.filter((m) => m.ready !== false).map((m) => m.id);
  const wanted = [chat.model, localStorage.getItem(LAST_MODEL_KEY)].find((id) => id && usable.includes(id));
  ui.model.value = wanted || usable[0] || "";
  if (!chat.messages.length) chat.model = ui.model.value;
  showAttach();
}

// ---------------------------------------------------------------- images in

let pending = [];               // data URLs to send with the next message

// `vision` null: not known until the provider has asked its service (a Space's chat
// input, the router's catalogue). Such a model is offered images: one that takes none
// is refused by the server (a 400 naming messages[i]) and the images are given back.
function visionModel() {
  const m = catalogue.data.find((x) => x.id === ui.model.value);
  return Boolean(m && m.vision !== false && (chat.mode || "chat") === "chat");
}

const visionAsked = new Set();  // models whose unknown vision was asked again after an answer

// After an answer from a model whose vision was not known: the catalogue once more
// (the provider may have learnt it, e.g. by discovering the Space), once per model.
function learnVision(model) {
  const m = catalogue.data.find((x) => x.id === model);
  if (!m || m.vision !== null || visionAsked.has(model)) return;
  visionAsked.add(model);
  loadModels();
}

function showAttach() {
  const vision = visionModel();
  ui.attach.hidden = !vision;
  if (!vision && pending.length) setPending([]);
}

function setPending(list) {
  pending = list;
  ui.attachments.replaceChildren(...pending.map((url, i) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = url;
    img.alt = `Image ${i + 1} to send`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove image ${i + 1}`);
    remove.addEventListener("click", () => { setPending(pending.filter((_, j) => j !== i)); ui.prompt.focus(); });
    li.append(img, remove);
    return li;
  }));
  ui.attachments.hidden = !pending.length;
}

async function addImages(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/"));
  if (!images.length) return false;
  if (!visionModel()) {
    showError({ message: `${ui.model.value || "this model"} does not take images` });
    return true;
  }
  try {
    const urls = await Promise.all(images.map(imageDataUrl));
    setPending([...pending, ...urls]);
  } catch (err) {
    showError({ message: "cannot read the image: " + err.message });
  }
  return true;
}

function requestMessages(c, upTo) {
  const out = [];
  if (c.system && c.system.trim()) out.push({ role: "system", content: c.system });
  for (const m of c.messages.slice(0, upTo)) {
    if (m.kind === "image") continue;
    if (m.images && m.images.length) {
      const parts = m.images.map((url) => ({ type: "image_url", image_url: { url } }));
      out.push({ role: m.role, content: [{ type: "text", text: m.content }, ...parts] });
    } else {
      out.push({ role: m.role, content: m.content });
    }
  }
  return out;
}

function number(value) {
  const n = Number.parseFloat(value);
  return Number.isFinite(n) ? n : null;
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
  ui.app.classList.toggle("busy", busy);
}

// One answer to the conversation as it stands (its last message is the question).
// `fresh`: the question was just typed (given back to the prompt if nothing came).
async function answer(c, fresh) {
  showError(null);
  const question = c.messages[c.messages.length - 1];
  const image = c.mode === "image";
  const m = { role: "assistant", content: "", status: "streaming", requested: ui.model.value || "" };
  if (image) { m.kind = "image"; m.prompt = question.content; }
  const turn = requestMessages(c, c.messages.length);
  c.messages.push(m);
  const div = messageView(m);
  div.classList.add("streaming");
  div.querySelector(".content").setAttribute("aria-busy", "true");
  ui.log.appendChild(div);
  div.scrollIntoView({ block: "end" });
  const view = image ? null : new StreamView(div.querySelector(".content"));
  const controller = new AbortController();
  streaming = { controller, chat: c };
  setBusy(true);
  markRetry();
  const forget = () => {    // nothing arrived: the answer is undone (a fresh question too)
    c.messages.splice(c.messages.indexOf(m), 1);
    div.remove();
    if (fresh) {
      c.messages.splice(c.messages.indexOf(question), 1);
      const asked = views.get(question);
      if (asked) asked.remove();
      if (c === chat && !ui.prompt.value) ui.prompt.value = question.content;
      if (c === chat && question.images && !pending.length) setPending(question.images);
    }
  };
  const fail = (error) => {
    if (m.content) {
      m.status = "interrupted";
      m.error = error.message;
      showError(error, regenerate);
    } else {
      forget();
      showError(error, fresh ? () => ui.form.requestSubmit() : regenerate);
    }
  };
  try {
    if (image) await paint(m, question, div, controller, fail);
    else await stream(c, m, turn, view, div, controller, fail);
  } catch (err) {
    if (leaving) {           // the page is being left: keep the question (and what came)
      if (m.content) m.status = "interrupted";
      else { c.messages.splice(c.messages.indexOf(m), 1); div.remove(); }
    } else if (err === NEEDS_KEY) {
      forget();
      askForKey(fresh ? () => ui.form.requestSubmit() : regenerate);
    } else if (err.name === "AbortError") {
      if (m.content || m.image) m.status = "stopped"; else forget();
    } else {
      fail({ message: "request failed: " + err.message });
    }
  } finally {
    if (view) view.finish();
    if (m.status === "streaming") m.status = "done";
    div.classList.remove("streaming");
    div.querySelector(".content").removeAttribute("aria-busy");
    if (div.isConnected) setMeta(div, m);
    streaming = null;
    setBusy(false);
    if (c === chat) markRetry();
    keep(c);
    if (c === chat && !image) learnVision(ui.model.value);
  }
}

async function stream(c, m, turn, view, div, controller, fail) {
  const body = { model: ui.model.value || undefined, messages: turn, stream: true, stream_options: { include_usage: true } };
  const temperature = number(c.temperature);
  const maxTokens = number(c.maxTokens);
  if (temperature !== null) body.temperature = temperature;
  if (maxTokens !== null) body.max_tokens = Math.round(maxTokens);
  const response = await fetch("/v1/chat/completions", {
    method: "POST", headers: headers(), signal: controller.signal, body: JSON.stringify(body),
  });
  if (response.status === 401) throw NEEDS_KEY;
  if (!response.ok) { fail(await errorOf(response)); return; }
  try { m.attempts = JSON.parse(response.headers.get(ATTEMPTS_HEADER) || "[]"); } catch (_) { m.attempts = []; }
  // counted by the server when the provider reports no usage: shown as an estimate
  m.usageEstimated = response.headers.get("x-llmrelay-usage") === "estimated";
  let finished = false;
  for await (const data of sseData(response.body, controller.signal)) {
    if (data === "[DONE]") { finished = true; break; }
    let chunk;
    try { chunk = JSON.parse(data); } catch (_) { continue; }
    if (chunk.error) { fail(chunk.error); return; }
    if (chunk.model && !m.provider) {
      const [provider, ...rest] = chunk.model.split(":");
      m.provider = provider;
      m.model = rest.join(":");
      setMeta(div, m);
    }
    if (chunk.usage) m.usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      const piece = choice.delta && choice.delta.content;
      if (piece) { m.content += piece; view.push(piece); scrollToEnd(div); }
    }
  }
  if (!finished) fail({ message: "the stream ended early" });
}

async function paint(m, question, div, controller, fail) {
  const model = ui.model.value || undefined;
  const response = await fetch("/v1/images/generations", {
    method: "POST", headers: headers(), signal: controller.signal,
    body: JSON.stringify({ model, prompt: question.content, n: 1, response_format: "b64_json" }),
  });
  if (response.status === 401) throw NEEDS_KEY;
  if (!response.ok) { fail(await errorOf(response)); return; }
  const body = await response.json();
  const b64 = body.data && body.data[0] && body.data[0].b64_json;
  if (!b64) { fail({ message: "the answer holds no image" }); return; }
  const mime = b64.startsWith("/9j/") ? "image/jpeg" : b64.startsWith("UklGR") ? "image/webp" : "image/png";
  m.image = `data:${mime};base64,${b64}`;
  showImage(div.querySelector(".content"), m);
}

async function send(text) {
  if (streaming) return;
  flushSettings();
  const c = chat;
  c.model = ui.model.value;
  if (c.model) localStorage.setItem(LAST_MODEL_KEY, c.model);
  const question = { role: "user", content: text };
  if (pending.length) { question.images = pending; setPending([]); }
  c.messages.push(question);
  if (!c.title) c.title = text.replace(/\s+/g, " ").slice(0, 60);
  const div = messageView(c.messages[c.messages.length - 1]);
  ui.log.appendChild(div);
  keep(c);
  await answer(c, true);
}

function regenerate() {
  if (streaming) return;
  const c = chat;
  const last = c.messages[c.messages.length - 1];
  if (last && last.role === "assistant") {
    c.messages.pop();
    const view = views.get(last);
    if (view) view.remove();
  }
  if (!c.messages.length) return;
  answer(c, false);
}

// ---------------------------------------------------------------- wiring

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.prompt.value.trim();
  if ((!text && !pending.length) || streaming) return;
  ui.prompt.value = "";
  send(text);
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (streaming) { streaming.controller.abort(); return; }
  if (ui.app.classList.contains("sidebar-open")) { closeSidebar(); ui.openSidebar.focus(); return; }
  if (!ui.settings.hidden) { toggleSettings(false); ui.settingsToggle.focus(); }
});
ui.attach.addEventListener("click", () => ui.file.click());
ui.file.addEventListener("change", async () => { await addImages(ui.file.files); ui.file.value = ""; ui.prompt.focus(); });
ui.prompt.addEventListener("paste", (event) => {
  const files = event.clipboardData ? event.clipboardData.files : [];
  if ([...files].some((f) => f.type.startsWith("image/"))) { event.preventDefault(); addImages(files); }
});
ui.stop.addEventListener("click", () => { if (streaming) streaming.controller.abort(); });
ui.retry.addEventListener("click", () => { const action = retryAction; showError(null); if (action) action(); });
ui.newChat.addEventListener("click", startNewChat);
ui.model.addEventListener("change", () => {
  chat.model = ui.model.value;
  showAttach();
  localStorage.setItem(LAST_MODEL_KEY, chat.model);
  keep(chat);
});
ui.mode.addEventListener("change", () => {
  const mode = ui.mode.value;
  if (chat.messages.length) {   // a conversation keeps its mode: a new one for the other
    if (streaming) streaming.controller.abort();
    const c = newChat();
    c.mode = mode;
    showChat(c);
  } else {
    chat.mode = mode;
    fillModels();
  }
});

function toggleSettings(open) {
  ui.settings.hidden = !open;
  ui.settingsToggle.setAttribute("aria-expanded", String(open));
}
ui.settingsToggle.addEventListener("click", () => toggleSettings(ui.settings.hidden));
// Settings are saved a moment after the last keystroke (and before the page is left).
let settingsTimer = 0;
function settingsChanged() {
  chat.system = ui.system.value;
  chat.temperature = ui.temperature.value === "" ? null : ui.temperature.value;
  chat.maxTokens = ui.maxTokens.value === "" ? null : ui.maxTokens.value;
  clearTimeout(settingsTimer);
  const c = chat;
  settingsTimer = setTimeout(() => { settingsTimer = 0; keep(c); }, 400);
}
function flushSettings() {
  if (!settingsTimer) return;
  clearTimeout(settingsTimer);
  settingsTimer = 0;
  keep(chat);
}
for (const input of [ui.system, ui.temperature, ui.maxTokens]) {
  input.addEventListener("input", settingsChanged);
  input.addEventListener("change", flushSettings);
}

function openSidebar() {
  ui.app.classList.add("sidebar-open");
  ui.scrim.hidden = false;
  ui.openSidebar.setAttribute("aria-expanded", "true");
  const first = ui.chats.querySelector("button") || ui.closeSidebar;
  first.focus();
}
function closeSidebar() {
  ui.app.classList.remove("sidebar-open");
  ui.scrim.hidden = true;
  ui.openSidebar.setAttribute("aria-expanded", "false");
}
ui.openSidebar.addEventListener("click", openSidebar);
ui.closeSidebar.addEventListener("click", () => { closeSidebar(); ui.openSidebar.focus(); });
ui.scrim.addEventListener("click", closeSidebar);

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.key.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  ui.key.value = "";
  ui.keyForm.hidden = true;
  showError(null);
  const then = keyThen; keyThen = null;
  if (then) then();
  if (then !== loadModels && !catalogue.data.length) loadModels();
});

// Leaving (or reloading) while an answer comes: keep what came so far.
let leaving = false;
window.addEventListener("pagehide", () => {
  leaving = true;
  flushSettings();
  if (streaming) keep(streaming.chat);
});
window.addEventListener("pageshow", () => { leaving = false; });

// The on-screen keyboard: keep the page (and its input) within the visible viewport.
if (window.visualViewport) {
  const fit = () => document.documentElement.style.setProperty("--app-height", `${window.visualViewport.height}px`);
  window.visualViewport.addEventListener("resize", fit);
  fit();
}

(function start() {
  const open = localStorage.getItem(OPEN_KEY);
  const saved = open && storage.load(open);
  showChat(saved || newChat());
  loadModels();
})();
