// Drives the gateway with the official Node SDKs of OpenAI (Responses API)
// and Anthropic (Messages API), as the acceptance suite's NodeSDKs step:
// BASE_URL, KEY and MODEL come from the environment; each check prints a
// line "ok <name>" or throws.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const { BASE_URL, KEY, MODEL, NONCE } = process.env;
const openai = new OpenAI({ baseURL: BASE_URL + "/v1", apiKey: KEY, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: BASE_URL, apiKey: KEY, maxRetries: 0 });

function check(cond, what, got) {
  if (!cond) throw new Error(what + ": " + JSON.stringify(got));
}

const weather = { type: "function", name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } };

// Responses: create, stream (the SDK's own accumulator), tools, state.
const first = await openai.responses.create({ model: MODEL, instructions: "Be brief.", input: "hello " + NONCE });
check(first.output_text === "echo: hello " + NONCE && first.status === "completed", "responses.create", first);
console.log("ok responses.create");

const stream = openai.responses.stream({ model: MODEL, input: "streamed " + NONCE, previous_response_id: first.id });
let deltas = "";
stream.on("response.output_text.delta", (e) => { deltas += e.delta; });
const streamed = await stream.finalResponse();
check(deltas === "echo: streamed " + NONCE && streamed.output_text === deltas && streamed.previous_response_id === first.id, "responses.stream", streamed);
console.log("ok responses.stream");

const call = await openai.responses.create({ model: MODEL, input: "#tool", tools: [weather] });
const fc = call.output.find((o) => o.type === "function_call");
check(fc && fc.name === "get_weather" && JSON.parse(fc.arguments).city, "responses tool call", call.output);
const after = await openai.responses.create({ model: MODEL, tools: [weather], previous_response_id: call.id,
  input: [{ type: "function_call_output", call_id: fc.call_id, output: "sunny " + NONCE }] });
check(after.status === "completed", "responses tool output", after);
console.log("ok responses.tools");

const again = await openai.responses.retrieve(streamed.id);
check(again.id === streamed.id && again.output_text === streamed.output_text, "responses.retrieve", again);
await openai.responses.delete(streamed.id);
let gone = false;
try { await openai.responses.retrieve(streamed.id); } catch (e) { gone = e.status === 404; }
check(gone, "responses.delete", gone);
console.log("ok responses.state");

// Messages: create, stream (finalMessage), tool use, count_tokens, errors.
const msg = await anthropic.messages.create({ model: MODEL, max_tokens: 64, system: "Be brief.",
  messages: [{ role: "user", content: "hi " + NONCE }] });
check(msg.content[0].text === "echo: hi " + NONCE && msg.stop_reason === "end_turn", "messages.create", msg);
console.log("ok messages.create");

const ms = anthropic.messages.stream({ model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "flow " + NONCE }] });
let text = "";
ms.on("text", (t) => { text += t; });
const final = await ms.finalMessage();
check(text === "echo: flow " + NONCE && final.content[0].text === text, "messages.stream", final);
console.log("ok messages.stream");

const tools = [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }];
const tu = await anthropic.messages.create({ model: MODEL, max_tokens: 64, tools, messages: [{ role: "user", content: "#tool" }] });
const use = tu.content.find((b) => b.type === "tool_use");
check(tu.stop_reason === "tool_use" && use && use.input.city, "messages tool_use", tu);
const ts = anthropic.messages.stream({ model: MODEL, max_tokens: 64, tools, messages: [{ role: "user", content: "#tool" }] });
const tfinal = await ts.finalMessage();
check(tfinal.content.find((b) => b.type === "tool_use").input.city === use.input.city, "messages tool_use streamed", tfinal);
const res = await anthropic.messages.create({ model: MODEL, max_tokens: 64, tools, messages: [
  { role: "user", content: "#tool" },
  { role: "assistant", content: tu.content },
  { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny " + NONCE }] },
] });
check(res.stop_reason, "messages tool_result", res);
console.log("ok messages.tools");

const count = await anthropic.messages.countTokens({ model: MODEL, messages: [{ role: "user", content: "count me" }] });
check(count.input_tokens > 0, "messages.countTokens", count);
let denied = null;
try {
  await new Anthropic({ baseURL: BASE_URL, apiKey: "sk-wrong0000000000", maxRetries: 0 }).messages.create({ model: MODEL, max_tokens: 8, messages: [{ role: "user", content: "x" }] });
} catch (e) { denied = e; }
check(denied && denied.status === 401 && denied.error?.error?.type === "authentication_error", "messages error", denied?.error);
console.log("ok messages.errors");
