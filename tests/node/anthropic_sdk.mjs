// @anthropic-ai/sdk against `llmrelay serve` (driven by tests/server/test_node_clients.py).
// Usage: node anthropic_sdk.mjs BASE_URL API_KEY CASE; prints one JSON line of results.
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, apiKey, which] = process.argv.slice(2);
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const weather = {
  name: "get_weather",
  description: "The weather in a city",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

async function main() {
  if (which === "create") {
    const message = await client.messages.create({
      model: "alpha:m",
      max_tokens: 50,
      system: "Be brief.",
      messages: [{ role: "user", content: "Say hi" }],
    });
    return { message };
  }
  if (which === "stream") {
    const stream = client.messages.stream({
      model: "alpha:m",
      max_tokens: 50,
      messages: [{ role: "user", content: "Say hi" }],
    });
    const events = [];
    stream.on("streamEvent", (event) => events.push(event.type));
    const text = [];
    stream.on("text", (delta) => text.push(delta));
    const message = await stream.finalMessage();
    return { events, text, message };
  }
  if (which === "tool") {
    const stream = client.messages.stream({
      model: "alpha:m",
      max_tokens: 50,
      tools: [weather],
      messages: [{ role: "user", content: "Weather in Paris?" }],
    });
    const json = [];
    stream.on("inputJson", (partial, snapshot) => json.push(snapshot));
    const message = await stream.finalMessage();
    return { json, message };
  }
  if (which === "error") {
    try {
      await client.messages.create({
        model: "nope:m",
        max_tokens: 5,
        messages: [{ role: "user", content: "x" }],
      });
      return { error: null };
    } catch (error) {
      return { error: { name: error.constructor.name, status: error.status, body: error.error } };
    }
  }
  throw new Error(`unknown case ${which}`);
}

main().then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
