// Conversations: every key's, newest first (narrowed to one key), read
// with markdown rendered safely (code blocks, images), and deleted.
import {$, T, api, el, row, button, num, when, confirmed, keyList} from "./lib.js";
import {render, image} from "./markdown.js";

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

// body shows a message: its text parts as markdown, its pictures as
// images (data: pictures and the gateway's own), its tool calls as code.
function body(m) {
  const box = el("div", {class: "md"});
  if (typeof m.content === "string") box.append(render(m.content));
  else if (Array.isArray(m.content)) {
    for (const p of m.content) {
      if (p.type === "text") box.append(render(p.text || ""));
      else if (p.type === "image_url") {
        const src = (p.image_url && p.image_url.url) || (typeof p.image_url === "string" ? p.image_url : "");
        box.append(image(src, "image") || el("p", {class: "muted", text: T("［图片：", "[image: ") + (src.startsWith("data:") ? src.slice(0, 30) + "…" : src) + T("］", "]")}));
      }
    }
  }
  if (m.tool_calls) box.append(render("```json\n" + JSON.stringify(m.tool_calls, null, 2) + "\n```"));
  return box;
}

let reading = 0; // the latest conversation asked for, which alone is shown

async function open(c) {
  const mine = ++reading;
  $("conv_msg").textContent = "";
  try {
    // A long conversation comes in pages.
    const messages = [];
    let cursor = "";
    do {
      const page = await api("GET", "admin/api/conversations/" + encodeURIComponent(c.admin_id) + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
      if (mine !== reading) return;
      messages.push(...page.messages);
      cursor = page.next_cursor;
    } while (cursor);
    $("conversation_title").textContent = (c.title || c.id) + " · " + c.key_name;
    $("conversation").replaceChildren(...messages.map((m) => el("div", {class: "msg " + m.role},
      el("div", {class: "role", text: m.role}), body(m),
      m.truncated ? el("p", {class: "muted", text: T("（消息过长，只显示开头）", "(too long: only its start is shown)")}) : null)));
    $("conversation_box").hidden = false;
    $("conversation_box").scrollIntoView({block: "start"});
  } catch (e) { if (mine === reading) $("conv_msg").textContent = e.message; }
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
