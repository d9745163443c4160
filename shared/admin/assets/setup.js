"use strict";
const $ = (id) => document.getElementById(id);
const EN = document.body.dataset.lang === "en";
const T = (zh, en) => (EN ? en : zh);
const mismatch = T("两次输入的密码不一致。", "The passwords do not match.");
let found = null; // what the JavaScript gateway left, if anything

function importing() { return found !== null && $("import_on").checked; }

// The upstream fields and what they hold when not importing.
const upstreamIDs = ["ai_base", "ai_model", "rag_base", "rag_model"];
const defaults = Object.fromEntries(upstreamIDs.map((id) => [id, $(id).value]));

// showUpstreams makes the upstream fields optional overrides while
// importing (empty keeps the imported value), and the defaults otherwise.
function showUpstreams() {
  const on = importing();
  $("keep_note").hidden = !on;
  for (const id of upstreamIDs) {
    $(id).value = on ? "" : defaults[id];
    $(id).placeholder = on ? (EN ? "imported" : "沿用导入的") : "";
  }
  for (const id of ["ai_base", "ai_model"]) $(id).required = !on;
  $("proof").required = on;
}

fetch("admin/api/setup").then((r) => r.json()).then((s) => {
  if (!s.import || !s.import.found) return;
  found = s.import;
  const parts = [];
  if (found.ai_base_url) parts.push(T("AI 上游 ", "AI upstream ") + found.ai_base_url + (found.ai_model ? " · " + found.ai_model : ""));
  if (found.public_model) parts.push(T("对外模型 ", "public model ") + found.public_model);
  parts.push(T(`${found.keys} 个 API 密钥，${found.models} 个模型，${found.files} 个文件`, `API keys: ${found.keys}, models: ${found.models}, files: ${found.files}`));
  $("import_summary").textContent = T("发现旧网关的数据：", "Found the old gateway's data: ") + parts.join("; ") +
    (found.warnings ? "\n" + found.warnings.join("\n") : "");
  $("import").hidden = false;
  showUpstreams();
}).catch(() => {});
$("import_on").addEventListener("change", showUpstreams);

// importFiles signs in and brings the old files over in steps, showing
// how far it got.
async function importFiles(password, progress) {
  $("importing").hidden = false;
  const show = (p) => {
    const total = p.models_total + p.keys_total + p.files_total, done = p.models_done + p.keys_done + p.files_done;
    $("import_bar").max = Math.max(total, 1);
    $("import_bar").value = done;
    $("import_status").textContent = T(`导入中：密钥 ${p.keys_done}/${p.keys_total}，文件 ${p.files_done}/${p.files_total}`,
      `Importing: keys ${p.keys_done}/${p.keys_total}, files ${p.files_done}/${p.files_total}`);
    const items = (p.failed || []).map((f) => {
      const li = document.createElement("li");
      li.textContent = (f.file || f.key || f.model) + ": " + f.reason;
      return li;
    });
    if (p.failed_more) {
      const li = document.createElement("li");
      li.textContent = T(`另有 ${p.failed_more} 项`, `and ${p.failed_more} more`);
      items.push(li);
    }
    $("import_failed").replaceChildren(...items);
  };
  show(progress);
  const login = await fetch("admin/api/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({password})});
  const session = await login.json().catch(() => ({}));
  if (!login.ok) { $("import_status").textContent = (session.error && session.error.message) || login.statusText; return; }
  while (!progress.done) {
    const res = await fetch("admin/api/documents/import", {method: "POST", headers: {"X-CSRF-Token": session.csrf_token}});
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      $("import_status").textContent = T("导入中断：", "The import stopped: ") + ((data.error && data.error.message) || res.statusText) +
        T("。可在管理面板重新导入，已导入的不会重复。", ". Run it again from the admin panel; what was imported is not imported twice.");
      return;
    }
    progress = data;
    show(progress);
  }
  $("import_status").textContent = T(`导入完成：${progress.keys_done} 个密钥，${progress.documents} 个文档。`,
    `Imported ${progress.keys_done} keys and ${progress.documents} documents.`);
}

$("setup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("msg").textContent = "";
  if ($("pw").value !== $("pw2").value) { $("msg").textContent = mismatch; return; }
  if (strength($("pw").value) < 1) { $("msg").textContent = T("密码太短。", "The password is too short."); return; }
  const body = {admin_password: $("pw").value};
  if (importing()) {
    body.import = {proof: $("proof").value.trim()};
    // Only what was typed overrides the imported settings.
    const given = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== ""));
    body.ai = given({base_url: $("ai_base").value.trim(), api_key: $("ai_key").value.trim(), model: $("ai_model").value.trim()});
    const rag = given({base_url: $("rag_base").value.trim(), api_key: $("rag_key").value.trim(), model: $("rag_model").value.trim()});
    if (Object.keys(rag).length) body.rag = rag;
  } else {
    body.ai = {base_url: $("ai_base").value.trim(), api_key: $("ai_key").value.trim(), model: $("ai_model").value.trim()};
    if ($("rag_base").value.trim()) {
      body.rag = {base_url: $("rag_base").value.trim(), api_key: $("rag_key").value.trim(), model: $("rag_model").value.trim()};
    }
  }
  const res = await fetch("admin/api/setup", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await res.json().catch(() => ({}));
  if (res.status !== 201) { $("msg").textContent = (data.error && data.error.message) || res.statusText; return; }
  $("setup").hidden = true;
  $("key").textContent = data.api_key;
  showSnippets(data.api_key);
  $("done").hidden = false;
  if (data.import || data.import_error) {
    await importFiles(body.admin_password, data.import || {models_total: 0, models_done: 0, keys_total: 0, keys_done: 0, files_total: 0, files_done: 0, done: false});
  }
});
$("copy").addEventListener("click", () => navigator.clipboard.writeText($("key").textContent));
for (const b of document.querySelectorAll("button.copy")) {
  b.addEventListener("click", () => navigator.clipboard.writeText($(b.dataset.for).textContent));
}

// strength rates a password from 0 to 4: its length, and how many kinds
// of character it mixes.
function strength(pw) {
  if (pw.length < 8) return 0;
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(pw)).length;
  return Math.min(4, (pw.length >= 12) + (pw.length >= 16) + (kinds >= 2) + (kinds >= 3));
}
const words = [T("太短", "too short"), T("弱", "weak"), T("一般", "fair"), T("强", "strong"), T("很强", "very strong")];
function showStrength() {
  const s = strength($("pw").value);
  $("strength").value = s;
  $("strength_word").textContent = $("pw").value ? words[s] : "";
  $("pw2").setCustomValidity($("pw2").value && $("pw2").value !== $("pw").value ? mismatch : "");
}
$("pw").addEventListener("input", showStrength);
$("pw2").addEventListener("input", showStrength);

// testUpstream asks the gateway to call the upstream the fields give
// and says in words whether it answered.
async function testUpstream(prefix, capability) {
  const out = $(prefix + "_test_msg");
  out.className = "muted";
  out.textContent = T("测试中…", "Testing…");
  const body = {base_url: $(prefix + "_base").value.trim(), api_key: $(prefix + "_key").value.trim(),
    model: $(prefix + "_model").value.trim(), capability};
  try {
    const res = await fetch("admin/api/setup/test", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      out.className = "err";
      out.textContent = (data.error && data.error.message) || res.statusText;
      return;
    }
    const r = (data.results || [])[0] || {};
    out.className = data.ok ? "ok" : "err";
    out.textContent = data.ok ? T(`通过（${r.latency_ms} 毫秒）`, `Passed (${r.latency_ms} ms)`) : T("失败：", "Failed: ") + (r.error || "");
  } catch (e) {
    out.className = "err";
    out.textContent = String(e);
  }
}
$("ai_test").addEventListener("click", () => testUpstream("ai", "chat"));
$("rag_test").addEventListener("click", () => testUpstream("rag", "embeddings"));

// showSnippets fills the ready-made configurations with the new key.
function showSnippets(key) {
  const base = location.origin + "/v1";
  const model = $("ai_model").value.trim() || "your-model";
  const hello = T("你好", "Hello");
  $("snip_curl").textContent = `curl ${base}/chat/completions \\
  -H "Authorization: Bearer ${key}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${model}", "messages": [{"role": "user", "content": "${hello}"}]}'`;
  $("snip_openai").textContent = `from openai import OpenAI

client = OpenAI(base_url="${base}", api_key="${key}")
answer = client.chat.completions.create(model="${model}", messages=[{"role": "user", "content": "${hello}"}])
print(answer.choices[0].message.content)`;
  $("snip_codex").textContent = `model = "${model}"
model_provider = "gateway"

[model_providers.gateway]
name = "AI Gateway"
base_url = "${base}"
env_key = "GATEWAY_KEY"
wire_api = "responses"

# export GATEWAY_KEY=${key}`;
  $("snip_claude").textContent = `export ANTHROPIC_BASE_URL=${location.origin}
export ANTHROPIC_AUTH_TOKEN=${key}
claude`;
}
