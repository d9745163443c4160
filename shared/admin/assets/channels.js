// Channels: the upstreams requests go to, with their keys (masked), their
// health and why one was set aside; create, edit, test, fetch models,
// enable or disable, delete.
import {$, T, api, el, row, button, badge, num, list, numberOf, clearErrors, showError, say, confirmed, when} from "./lib.js";

const form = $("channel_form");
let editing = null; // the channel being edited (as read), or null for a new one

const statusText = {ok: T("正常", "OK"), cooling: T("冷却中", "Cooling down"), probing: T("待探测", "Probing"), disabled: T("已停用", "Disabled")};

// describe says what a breaker's state means, with its reason.
function describe(h) {
  if (h.status === "ok") return "";
  let s = h.status === "cooling" ? T(`连续失败 ${h.failures} 次，${when(h.open_until)} 前暂停`, `${h.failures} failures in a row; out until ${when(h.open_until)}`)
    : h.status === "probing" ? T("冷却结束，下一个请求会试探它", "cooled down: the next request probes it")
    : T("已停用，直到测试或探测成功", "set aside until a test or probe passes");
  if (h.reason) s += T("：", ": ") + h.reason;
  return s;
}

export async function load() {
  const [{data}, stats] = await Promise.all([api("GET", "admin/api/channels"), api("GET", "admin/api/stats?range=24h").catch(() => ({channels: []}))]);
  const used = Object.fromEntries(stats.channels.map((c) => [c.name, c]));
  const tbody = $("channels");
  tbody.replaceChildren(...data.map((c) => {
    const status = c.enabled ? c.health.status : "disabled";
    const keys = el("div", null, c.keys.map((k) => el("div", null, el("code", {text: k.key}), " ",
      k.status !== "ok" ? badge(k.status, statusText[k.status]) : null,
      describe(k) ? el("div", {class: "muted", text: describe(k)}) : null)));
    return row(tbody, [
      el("div", null, el("b", {text: c.name}), el("div", {class: "muted", text: c.base_url}), c.note ? el("div", {class: "muted", text: c.note}) : null),
      el("div", null, badge(status, c.enabled ? statusText[status] : T("已关闭", "Off")), describe(c.health) ? el("div", {class: "muted", text: describe(c.health)}) : null,
        used[c.id] ? el("div", {class: "muted", text: T(`24 小时：${num(used[c.id].requests)} 次，p50 ${num(used[c.id].p50_ms)} ms，p95 ${num(used[c.id].p95_ms)} ms`,
          `24 h: ${num(used[c.id].requests)} requests, p50 ${num(used[c.id].p50_ms)} ms, p95 ${num(used[c.id].p95_ms)} ms`)}) : null),
      el("div", null, (c.models.length ? c.models.join(", ") : T("全部", "any")), el("div", {class: "muted", text: c.capabilities.join(", ")})),
      keys,
      `${c.priority} / ${c.weight}`,
      el("div", null,
        button(T("测试", "Test"), "ghost small", () => test(c)),
        button(T("编辑", "Edit"), "ghost small", () => edit(c)),
        button(c.enabled ? T("停用", "Disable") : T("启用", "Enable"), "ghost small", () => toggle(c)),
        button(T("删除", "Delete"), "danger small", () => remove(c))),
    ]);
  }));
  if (!data.length) tbody.replaceChildren(el("tr", null, el("td", {colspan: 6, class: "muted", text: T("还没有渠道：添加一个上游。", "No channels yet: add an upstream.")})));
}

function fill(c) {
  $("ch_name").value = c ? c.name : "";
  $("ch_base").value = c ? c.base_url : "";
  $("ch_keys").value = c ? c.keys.map((k) => k.key).join("\n") : "";
  $("ch_models").value = c ? c.models.join(", ") : "";
  $("ch_map").value = c && c.model_map ? Object.entries(c.model_map).map(([a, b]) => a + "=" + b).join("\n") : "";
  for (const cb of $("ch_caps").querySelectorAll("input")) cb.checked = c ? c.capabilities.includes(cb.value) : cb.value === "chat";
  $("ch_priority").value = c ? c.priority : 0;
  $("ch_weight").value = c ? c.weight : 1;
  $("ch_note").value = c ? c.note || "" : "";
  $("ch_enabled").checked = c ? c.enabled : true;
  $("ch_test_msg").replaceChildren();
  $("channel_form_title").textContent = c ? T("编辑渠道：", "Edit channel: ") + c.name : T("新渠道", "New channel");
  clearErrors(form);
}

function edit(c) { editing = c; fill(c); form.hidden = false; $("ch_name").focus(); }

// body is the form as the API takes it.
function body() {
  const map = {};
  for (const line of $("ch_map").value.split("\n")) {
    const [a, ...b] = line.split("=");
    if (a.trim() && b.length) map[a.trim()] = b.join("=").trim();
  }
  const out = {
    name: $("ch_name").value.trim(), base_url: $("ch_base").value.trim(),
    api_keys: $("ch_keys").value.split("\n").map((k) => k.trim()).filter(Boolean),
    models: list($("ch_models").value), model_map: map,
    capabilities: [...$("ch_caps").querySelectorAll("input:checked")].map((cb) => cb.value),
    priority: numberOf($("ch_priority"), 0), weight: numberOf($("ch_weight"), 1),
    enabled: $("ch_enabled").checked, note: $("ch_note").value.trim(),
  };
  if (editing) out.version = editing.version;
  return out;
}

// results shows a test's outcome, key by key, in words.
function results(box, r) {
  box.replaceChildren(
    el("p", {class: r.ok ? "ok" : "err", text: r.ok ? T(`通过：${r.upstream_model} 可用。`, `Passed: ${r.upstream_model} answers.`)
      : T(`未通过（${r.upstream_model}）：`, `Failed (${r.upstream_model}):`)}),
    el("ul", null, r.results.map((k) => el("li", {class: k.ok ? "ok" : "err"},
      (k.key ? k.key + " · " : "") + (k.ok ? T(`正常，${k.latency_ms} ms`, `OK in ${k.latency_ms} ms`) + (k.answer ? " · " + k.answer : "") : k.error))))
  );
}

async function test(c) {
  const box = $("channel_result");
  box.replaceChildren(el("p", {class: "muted", text: T(`正在测试 ${c.name}…`, `Testing ${c.name}…`)}));
  try { results(box, await api("POST", "admin/api/channels/" + encodeURIComponent(c.id) + "/test", {})); await load(); }
  catch (e) { box.replaceChildren(el("p", {class: "err", text: e.message})); }
}

async function toggle(c) {
  try { await api("PUT", "admin/api/channels/" + encodeURIComponent(c.id), {enabled: !c.enabled, version: c.version}); await load(); }
  catch (e) { $("channels_msg").textContent = e.message; }
}

async function remove(c) {
  if (!(await confirmed(T(`删除渠道“${c.name}”？它的密钥也会一起删除。`, `Delete the channel "${c.name}"? Its keys go with it.`)))) return;
  try { await api("DELETE", "admin/api/channels/" + encodeURIComponent(c.id)); await load(); }
  catch (e) { $("channels_msg").textContent = e.message; }
}

$("channel_new").addEventListener("click", () => edit(null));
$("ch_cancel").addEventListener("click", () => { form.hidden = true; editing = null; });
// draft is the form for the test and the model list: a saved channel's
// id comes along, so that its masked keys stand for the saved ones.
function draft() {
  const b = body();
  delete b.version;
  if (editing) b.id = editing.id;
  return b;
}

$("ch_test").addEventListener("click", async () => {
  clearErrors(form);
  const box = $("ch_test_msg");
  box.replaceChildren(el("p", {class: "muted", text: T("测试中…", "Testing…")}));
  try { results(box, await api("POST", "admin/api/channels/test", draft())); }
  catch (e) { box.replaceChildren(); showError(form, e); }
});
$("ch_fetch").addEventListener("click", async () => {
  clearErrors(form);
  const box = $("ch_test_msg");
  try {
    const {data} = await api("POST", "admin/api/channels/models", draft());
    $("ch_models_list").replaceChildren(...data.map((m) => el("option", {value: m})));
    box.replaceChildren(el("p", {class: "ok", text: T(`上游有 ${data.length} 个模型：`, `The upstream lists ${data.length} models: `) + data.slice(0, 40).join(", ") + (data.length > 40 ? " …" : "")}),
      data.length ? button(T("全部加入", "Use them all"), "ghost small", () => { $("ch_models").value = data.join(", "); }) : null);
  } catch (e) { box.replaceChildren(); showError(form, e); }
});
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(form);
  try {
    if (editing) await api("PUT", "admin/api/channels/" + encodeURIComponent(editing.id), body());
    else await api("POST", "admin/api/channels", body());
    form.hidden = true; editing = null;
    await load();
  } catch (e) {
    if (e.status === 409) say(form, T("渠道已被别处修改：请重新打开再改。", "The channel changed elsewhere: open it again and redo the change."), "err");
    else showError(form, e);
  }
});
