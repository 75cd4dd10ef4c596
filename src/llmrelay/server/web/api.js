// This server's OpenAI-compatible API: the page's key (sessionStorage), error bodies,
// the SSE stream of a chat completion.

export const KEY_STORAGE = "llmrelay.serverKey";
export const ATTEMPTS_HEADER = "X-LLMRelay-Attempts";
export const NEEDS_KEY = new Error("this server needs its API key");

export function headers() {
  const h = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

export async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error;
  } catch (_) { /* not JSON */ }
  return { message: "HTTP " + response.status };
}

// Parse an SSE body: yields each event's data (multi-line data joined with "\n").
export async function* sseData(body, signal) {
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
