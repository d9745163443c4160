// Public models: a name over an upstream model with its own system
// prompt, knowledge bases, drawing and cache; and the model aliases.
import {$, T, api, el, row, button, list, numberOf, clearErrors, showError, say, confirmed} from "./lib.js";

const form = $("model_form"), aliases = $("aliases");
let editing = null;
let names = new Set(); // the models listed, and the default
let chatChannels = [], asked = false;

function offer(models) {
  const have = new Set([...$("upstream_models").options].map((o) => o.value));
  for (const m of models) if (!have.has(m)) { have.add(m); $("upstream_models").append(el("option", {value: m})); }
}

$("model_upstream").addEventListener("focus", () => {
  if (asked) return;
  asked = true;
  for (const c of chatChannels.filter((c) => !c.models.length || c.models.some((n) => /[*?[]/.test(n))).slice(0, 5)) {
    api("GET", "admin/api/channels/" + encodeURIComponent(c.id) + "/models").then((r) => offer(r.data)).catch(() => {});
  }
});

export async function load() {
  const [{data}, settings, chans] = await Promise.all([api("GET", "admin/api/models"), api("GET", "admin/api/settings"),
    api("GET", "admin/api/channels").catch(() => ({data: []}))]);
  const tbody = $("models");
  tbody.replaceChildren(...data.map((m) => row(tbody, [
    el("b", {text: m.name}), m.upstream_model, (m.knowledge_bases || []).join(", ") || "—", m.drawing ? "✓" : "—",
    m.cache && m.cache.ttl_seconds ? m.cache.ttl_seconds + " s" + (m.cache.shared ? T("，共享", ", shared") : "") : "—",
    el("div", null, button(T("编辑", "Edit"), "ghost small", () => edit(m)), button(T("删除", "Delete"), "danger small", () => remove(m))),
  ])));
  const name = settings.public_model || settings.ai.model;
  names = new Set([name, ...data.map((m) => m.name)]);
  $("default_model").textContent = T(`默认模型“${name}”（上游 ${settings.ai.model}）在“设置”中修改。`,
    `The default model, "${name}" (upstream ${settings.ai.model}), is set in Settings.`);
  if (!data.length) tbody.replaceChildren(el("tr", null, el("td", {colspan: 6, class: "muted", text: T("还没有其他模型。", "No other models yet.")})));
  // What the channels offer, to pick an upstream model from; where a
  // channel takes any model (a glob), what its upstream lists, asked when
  // the field is first used.
  chatChannels = chans.data.filter((c) => c.enabled && c.capabilities.includes("chat"));
  $("upstream_models").replaceChildren();
  offer(chatChannels.flatMap((c) => c.models.filter((n) => !/[*?[]/.test(n))));
  asked = false;
  $("alias_rows").replaceChildren(...(settings.model_aliases || []).map((a) => aliasRow(a)));
}

function edit(m) {
  editing = m;
  clearErrors(form);
  $("model_name").value = m ? m.name : "";
  $("model_name").readOnly = !!m;
  $("model_upstream").value = m ? m.upstream_model : "";
  $("model_prompt").value = m ? m.system_prompt : "";
  $("model_kbs").value = m ? (m.knowledge_bases || []).join(", ") : "";
  $("model_drawing").checked = m ? m.drawing : false;
  $("model_ttl").value = m && m.cache ? m.cache.ttl_seconds : 0;
  $("model_shared").checked = !!(m && m.cache && m.cache.shared);
  $("model_sampled").checked = !!(m && m.cache && m.cache.sampled);
  form.hidden = false;
  (m ? $("model_upstream") : $("model_name")).focus();
}

async function remove(m) {
  if (!(await confirmed(T(`删除模型“${m.name}”？使用它的客户端会收到 404。`, `Delete the model "${m.name}"? Clients using it get a 404.`)))) return;
  try { await api("DELETE", "admin/api/models/" + encodeURIComponent(m.name)); await load(); }
  catch (e) { $("models_msg").textContent = e.message; }
}

$("model_new").addEventListener("click", () => edit(null));
$("model_cancel").addEventListener("click", () => { form.hidden = true; });
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(form);
  const name = $("model_name").value.trim();
  if (!name) { showError(form, {param: "name", message: T("请填写名称。", "Give the model a name.")}); return; }
  // PUT replaces: a new model must not take an existing one's name.
  if (!editing && names.has(name)) {
    showError(form, {param: "name", message: T(`已有名为“${name}”的模型：请在列表中编辑它。`, `A model named "${name}" exists: edit it in the list.`)});
    return;
  }
  try {
    await api("PUT", "admin/api/models/" + encodeURIComponent(name), {
      upstream_model: $("model_upstream").value.trim(), system_prompt: $("model_prompt").value,
      knowledge_bases: list($("model_kbs").value), drawing: $("model_drawing").checked,
      cache: {ttl_seconds: numberOf($("model_ttl"), 0), shared: $("model_shared").checked, sampled: $("model_sampled").checked},
    });
    form.hidden = true;
    await load();
  } catch (e) { showError(form, e); }
});

// aliasRow is one alias's inputs; names carry their index when saved.
function aliasRow(a) {
  return el("div", {class: "rowedit"},
    el("div", null, el("label", {text: T("客户端的名字", "Name asked for")}), el("input", {value: a.from, class: "from"})),
    el("div", null, el("label", {text: T("对外模型", "Public model")}), el("input", {value: a.to, class: "to"})),
    el("div", null, button(T("移除", "Remove"), "ghost small", (ev) => ev.target.closest(".rowedit").remove())));
}
$("alias_add").addEventListener("click", () => $("alias_rows").append(aliasRow({from: "", to: ""})));
aliases.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(aliases);
  const rows = [...$("alias_rows").querySelectorAll(".rowedit")];
  rows.forEach((r, i) => { r.querySelector(".from").name = `model_aliases[${i}].from`; r.querySelector(".to").name = `model_aliases[${i}].to`; });
  const body = rows.map((r) => ({from: r.querySelector(".from").value.trim(), to: r.querySelector(".to").value.trim()}));
  try { await api("PUT", "admin/api/settings", {model_aliases: body}); say(aliases, T("已保存。", "Saved."), "ok"); }
  catch (e) { showError(aliases, e); }
});
