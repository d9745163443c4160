// Conversations: every key's, newest first (narrowed to one key), read
// with markdown rendered safely (code blocks, images), and deleted.
import {$, T, api, el, row, button, num, when, confirmed, keyList} from "./lib.js";
import {render} from "./markdown.js";

export async function load() {
  const keys = await keyList();
  const sel = $("conv_key"), chosen = sel.value;
  sel.replaceChildren(el("option", {value: "", text: T("全部密钥", "All keys")}), ...keys.map((k) => el("option", {value: k.id, text: k.name})));
  sel.value = chosen;
  const {data} = await api("GET", "admin/api/conversations" + (chosen ? "?key_id=" + encodeURIComponent(chosen) : ""));
  const tbody = $("conversations");
  tbody.replaceChildren(...data.map((c) => row(tbody, [
    el("div", null, el("b", {text: c.title || c.id}), el("div", {class: "muted", text: c.id})), c.key_name, num(c.message_count), when(c.updated_at),
    el("div", null, button(T("查看", "Read"), "ghost small", () => open(c)), button(T("删除", "Delete"), "danger small", () => remove(c))),
  ])));
  if (!data.length) tbody.replaceChildren(el("tr", null, el("td", {colspan: 5, class: "muted", text: T("没有对话。", "No conversations.")})));
}

// text returns a message's content as markdown: its text parts, its
// images as image links, and its tool calls as code.
function text(m) {
  if (typeof m.content === "string") return m.content;
  if (Array.isArray(m.content)) {
    return m.content.map((p) => p.type === "text" ? p.text : p.type === "image_url" ? `![image](${(p.image_url && p.image_url.url) || p.image_url})` : "").join("\n");
  }
  if (m.tool_calls) return "```json\n" + JSON.stringify(m.tool_calls, null, 2) + "\n```";
  return "";
}

async function open(c) {
  // A long conversation comes in pages.
  const messages = [];
  let cursor = "";
  do {
    const page = await api("GET", "admin/api/conversations/" + encodeURIComponent(c.admin_id) + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
    messages.push(...page.messages);
    cursor = page.next_cursor;
  } while (cursor);
  $("conversation_title").textContent = (c.title || c.id) + " · " + c.key_name;
  $("conversation").replaceChildren(...messages.map((m) => el("div", {class: "msg " + m.role},
    el("div", {class: "role", text: m.role}), el("div", {class: "md"}, render(text(m))),
    m.truncated ? el("p", {class: "muted", text: T("（消息过长，只显示开头）", "(too long: only its start is shown)")}) : null)));
  $("conversation_box").hidden = false;
  $("conversation_box").scrollIntoView({block: "start"});
}

async function remove(c) {
  if (!(await confirmed(T(`删除对话“${c.title || c.id}”？它的消息会一并删除。`, `Delete the conversation "${c.title || c.id}" and its messages?`)))) return;
  try {
    await api("DELETE", "admin/api/conversations/" + encodeURIComponent(c.admin_id));
    $("conversation_box").hidden = true;
    await load();
  } catch (e) { $("conv_msg").textContent = e.message; }
}

$("conv_key").addEventListener("change", () => load().catch((e) => { $("conv_msg").textContent = e.message; }));
