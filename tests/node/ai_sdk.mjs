// The Vercel AI SDK's default OpenAI provider (`openai(model)`: the Responses API) against
// `llmrelay serve` (driven by tests/server/test_node_clients.py).
// Usage: node ai_sdk.mjs BASE_URL API_KEY CASE; prints one JSON line of results.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, streamText, tool } from "ai";

const [baseURL, apiKey, which] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey });
const model = openai("alpha:m");

async function main() {
  if (which === "generate") {
    const result = await generateText({ model, system: "Be brief.", prompt: "Say hi", temperature: 0.3 });
    return {
      text: result.text,
      finishReason: result.finishReason,
      usage: result.usage,
      responseId: result.response.id,
      warnings: result.warnings,
    };
  }
  if (which === "stream") {
    const result = streamText({ model, prompt: "Say hi" });
    const parts = [];
    for await (const part of result.fullStream) parts.push(part.type);
    return { text: await result.text, finishReason: await result.finishReason, parts, reasoning: await result.reasoningText };
  }
  if (which === "tool") {
    const result = await generateText({
      model,
      prompt: "Weather in Paris?",
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: jsonSchema({
            type: "object",
            properties: { city: { type: "string" } },
            required: ["city"],
            additionalProperties: false,
          }),
        }),
      },
    });
    return {
      finishReason: result.finishReason,
      toolCalls: result.toolCalls.map((call) => ({ toolCallId: call.toolCallId, toolName: call.toolName, input: call.input })),
    };
  }
  if (which === "multiturn") {
    // the SDK sends the earlier answer back as an item_reference to the stored response
    const messages = [{ role: "user", content: "My name is Ann." }];
    const first = await generateText({ model, messages });
    messages.push(...first.response.messages, { role: "user", content: "Who am I?" });
    const second = await generateText({ model, messages });
    return { first: first.text, second: second.text, sent: first.response.messages };
  }
  if (which === "error") {
    try {
      await generateText({ model: openai("nope:m"), prompt: "x", maxRetries: 0 });
      return { error: null };
    } catch (error) {
      return { error: { name: error.name, statusCode: error.statusCode, message: error.message } };
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
