// Conversations kept in this browser: localStorage holds an index ([{id, title,
// updated}], newest first), one entry per conversation and the id of the open one.

export const INDEX_KEY = "llmrelay.chats";
export const CHAT_PREFIX = "llmrelay.chat.";
export const OPEN_KEY = "llmrelay.open";
export const LAST_MODEL_KEY = "llmrelay.lastModel";

export const storage = {
  index() {
    try { return JSON.parse(localStorage.getItem(INDEX_KEY) || "[]"); } catch (_) { return []; }
  },
  load(id) {
    try { return JSON.parse(localStorage.getItem(CHAT_PREFIX + id) || "null"); } catch (_) { return null; }
  },
  // Returns "" or a warning to show (the browser's storage is full).
  save(chat) {
    chat.updated = Date.now();
    const entry = { id: chat.id, title: chat.title, updated: chat.updated };
    const index = storage.index().filter((c) => c.id !== chat.id);
    index.unshift(entry);
    try {
      storage.write(chat, index);
    } catch (_) {
      // Full (images are large): keep the text, without this conversation's images.
      const light = {
        ...chat,
        messages: chat.messages.map((m) => (m.image ? { ...m, image: null, imageDropped: true }
          : m.images ? { ...m, images: m.images.map(() => "") } : m)),
      };
      try {
        storage.write(light, index);
        return "Storage is full: images of this conversation were not kept.";
      } catch (err) {
        return "This conversation could not be saved: " + err.message;
      }
    }
    return "";
  },
  write(chat, index) {
    localStorage.setItem(CHAT_PREFIX + chat.id, JSON.stringify(chat));
    localStorage.setItem(INDEX_KEY, JSON.stringify(index));
  },
  remove(id) {
    localStorage.removeItem(CHAT_PREFIX + id);
    localStorage.setItem(INDEX_KEY, JSON.stringify(storage.index().filter((c) => c.id !== id)));
    if (localStorage.getItem(OPEN_KEY) === id) localStorage.removeItem(OPEN_KEY);
  },
};

export function newChat() {
  return {
    id: (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^a-z0-9-]/gi, ""),
    title: "",
    titleSet: false,
    mode: "chat",
    model: localStorage.getItem(LAST_MODEL_KEY) || "",
    system: "",
    temperature: null,
    maxTokens: null,
    messages: [],
    updated: Date.now(),
  };
}
