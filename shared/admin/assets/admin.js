"use strict";
const EN = document.body.dataset.lang === "en";
// The largest file posted through the API; larger ones (and any the API
// refuses as too large) go straight to the blob store.
const MAX_API_UPLOAD = Number(document.body.dataset.maxUpload);
const $ = (id) => document.getElementById(id);
let csrf = "";
const fields = ["public_model","system_prompt","max_messages","max_output_tokens","server_memory","drawing_enabled","image_model",
  "image_size","draw_triggers","max_conversations","fallback.base_url","fallback.api_key","fallback.model",
  "image.base_url","image.api_key","rag.chunk_size","rag.chunk_overlap",
  "ai.base_url","ai.api_key","ai.model","rag.base_url","rag.api_key","rag.model","rag.top_k","rag.min_score","rag.rerank_model"];

async function api(method, path, body) {
  const opts = {method, headers: {}};
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const res = await fetch(path, opts);
  const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (res.status === 401) { show(false); }
  if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
  return data;
}
function show(signedIn) { $("login").hidden = signedIn; $("panel").hidden = !signedIn; $("logout").hidden = !signedIn; }
const when = (t) => t ? new Date(t).toLocaleString() : "—";

async function loadKeys() {
  const list = await api("GET", "admin/api/keys");
  const tbody = $("keys"); tbody.replaceChildren();
  keyNames = Object.fromEntries(list.data.map((k) => [k.id, k.name]));
  for (const k of list.data) {
    const tr = document.createElement("tr");
    for (const v of [k.name, k.hint, when(k.created_at), when(k.last_used_at)]) {
      const td = document.createElement("td"); td.textContent = v; tr.append(td);
    }
    const td = document.createElement("td");
    if (k.revoked_at) { td.textContent = EN ? "revoked" : "已撤销"; }
    else {
      const b = document.createElement("button"); b.className = "danger"; b.textContent = EN ? "Revoke" : "撤销";
      b.onclick = async () => { try { await api("DELETE", "admin/api/keys/" + encodeURIComponent(k.id)); await loadKeys(); } catch (e) { $("keys_msg").textContent = e.message; } };
      td.append(b);
    }
    tr.append(td); tbody.append(tr);
  }
}
async function loadSettings() {
  const s = await api("GET", "admin/api/settings");
  for (const f of fields) {
    const el = $(f), [a, b] = f.split(".");
    const v = b ? s[a][b] : s[a];
    if (el.type === "checkbox") el.checked = !!v; else el.value = Array.isArray(v) ? v.join(", ") : (v ?? "");
  }
}
function cells(tr, values) {
  for (const v of values) { const td = document.createElement("td"); td.textContent = v; tr.append(td); }
}
function button(label, cls, onclick) {
  const b = document.createElement("button"); b.className = cls; b.textContent = label; b.onclick = onclick; return b;
}
const statusText = EN ? {} : {ready: "就绪", processing: "处理中", uploading: "上传中", failed: "失败"};
let keyNames = {};
async function loadDocs() {
  const list = await api("GET", "admin/api/documents");
  const tbody = $("docs"); tbody.replaceChildren();
  for (const d of list.data) {
    const tr = document.createElement("tr");
    let status = statusText[d.status] || d.status;
    if (d.reason) status += ": " + d.reason;
    cells(tr, [d.title, d.knowledge_base, status, d.chunks]);
    const td = document.createElement("td");
    td.append(button(EN ? "Delete" : "删除", "danger", async () => {
      try { await api("DELETE", "admin/api/documents/" + encodeURIComponent(d.id)); await loadDocs(); } catch (e) { $("docs_msg").textContent = e.message; }
    }));
    tr.append(td); tbody.append(tr);
  }
  if (list.data.some((d) => d.status === "processing" || d.status === "uploading")) setTimeout(() => loadDocs().catch(() => {}), 2000);
}
async function uploadFile(file, kb) {
  if (file.size <= MAX_API_UPLOAD) {
    const form = new FormData(); form.append("file", file); form.append("knowledge_base", kb);
    const res = await fetch("admin/api/documents", {method: "POST", headers: {"X-CSRF-Token": csrf}, body: form});
    const data = await res.json().catch(() => ({}));
    if (res.ok) return;
    if (res.status !== 413) throw new Error((data.error && data.error.message) || res.statusText);
  }
  // Large files go straight to the blob store.
  const start = await api("POST", "admin/api/documents/uploads", {filename: file.name, size: file.size, content_type: file.type, knowledge_base: kb});
  const res = await fetch(start.upload.url, {method: "PUT", headers: start.upload.headers, body: file});
  if (!res.ok) throw new Error((EN ? "Upload failed: " : "上传失败：") + res.status);
}
async function loadModels() {
  const list = await api("GET", "admin/api/models");
  const tbody = $("models"); tbody.replaceChildren();
  for (const m of list.data) {
    const tr = document.createElement("tr");
    cells(tr, [m.name, m.upstream_model, (m.knowledge_bases || []).join(", "), m.drawing ? "✓" : ""]);
    const td = document.createElement("td");
    td.append(button(EN ? "Delete" : "删除", "danger", async () => {
      try { await api("DELETE", "admin/api/models/" + encodeURIComponent(m.name)); await loadModels(); } catch (e) { $("models_msg").textContent = e.message; }
    }));
    tr.append(td); tbody.append(tr);
  }
}
async function loadConversations() {
  const list = await api("GET", "admin/api/conversations");
  const tbody = $("conversations"); tbody.replaceChildren();
  for (const c of list.data) {
    const tr = document.createElement("tr");
    cells(tr, [c.key_name, c.title, c.message_count, when(c.updated_at)]);
    const td = document.createElement("td");
    td.append(button(EN ? "View" : "查看", "ghost", async () => {
      // A long conversation comes in pages.
      const messages = [];
      let cursor = "";
      do {
        const page = await api("GET", "admin/api/conversations/" + encodeURIComponent(c.admin_id) + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
        messages.push(...page.messages);
        cursor = page.next_cursor;
      } while (cursor);
      const text = (m) => typeof m.content === "string" ? m.content
        : Array.isArray(m.content) ? m.content.filter((p) => p.type === "text").map((p) => p.text).join("") : JSON.stringify(m.tool_calls || m.content);
      $("conversation").textContent = messages.map((m) => m.role + ": " + text(m)).join("\n\n");
      $("conversation").hidden = false;
    }));
    tr.append(td); tbody.append(tr);
  }
}
async function loadUsage() {
  const report = await api("GET", "admin/api/usage");
  const tbody = $("usage"); tbody.replaceChildren();
  for (const r of report.data) {
    const tr = document.createElement("tr");
    cells(tr, [r.day, keyNames[r.key_id] || r.key_id, r.model, r.requests, r.total_tokens, r.errors]);
    tbody.append(tr);
  }
}
$("docfile").addEventListener("submit", async (ev) => {
  ev.preventDefault(); const msg = $("docs_msg"); msg.className = ""; msg.textContent = EN ? "Uploading…" : "上传中…";
  try { await uploadFile($("docfile_input").files[0], $("docfile_kb").value.trim() || "default"); msg.textContent = ""; $("docfile_input").value = ""; await loadDocs(); }
  catch (e) { msg.className = "err"; msg.textContent = e.message; }
});
$("doctext").addEventListener("submit", async (ev) => {
  ev.preventDefault(); const msg = $("docs_msg"); msg.className = ""; msg.textContent = EN ? "Saving…" : "保存中…";
  try {
    await api("POST", "admin/api/documents", {title: $("doctext_title").value, text: $("doctext_body").value, knowledge_base: $("doctext_kb").value.trim() || "default"});
    msg.textContent = ""; $("doctext_title").value = ""; $("doctext_body").value = ""; await loadDocs();
  } catch (e) { msg.className = "err"; msg.textContent = e.message; }
});
$("newmodel").addEventListener("submit", async (ev) => {
  ev.preventDefault(); $("models_msg").textContent = "";
  const kbs = $("model_kbs").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
  try {
    await api("PUT", "admin/api/models/" + encodeURIComponent($("model_name").value.trim()),
      {upstream_model: $("model_upstream").value.trim(), system_prompt: $("model_prompt").value, knowledge_bases: kbs, drawing: $("model_drawing").checked});
    $("newmodel").reset(); await loadModels();
  } catch (e) { $("models_msg").textContent = e.message; }
});
// The import from the JavaScript gateway, where its data is (a Worker on
// its bindings): how far it came, and a button to go on or run it again.
function importText(p) {
  let s = EN ? `Models ${p.models_done}/${p.models_total}, keys ${p.keys_done}/${p.keys_total}, files ${p.files_done}/${p.files_total}`
    : `模型 ${p.models_done}/${p.models_total}，密钥 ${p.keys_done}/${p.keys_total}，文件 ${p.files_done}/${p.files_total}`;
  for (const f of p.failed || []) s += "; " + (f.file || f.key || f.model) + ": " + f.reason;
  if (p.failed_more) s += EN ? `; and ${p.failed_more} more` : `；另有 ${p.failed_more} 项`;
  return s;
}
async function loadImport() {
  let state;
  try { state = await api("GET", "admin/api/documents/import"); } catch { return; } // none here
  if (!state.source.found) return;
  $("jsimport").hidden = false;
  $("jsimport_proof").hidden = state.proven;
  $("jsimport_msg").textContent = importText(state.progress);
}
$("jsimport_run").addEventListener("click", async () => {
  try {
    // The first step carries the proof, if the owner has not given it yet.
    const proof = $("jsimport_proof").hidden ? undefined : {proof: $("jsimport_proof").value.trim()};
    let p = await api("POST", "admin/api/documents/import", proof);
    $("jsimport_proof").hidden = true;
    $("jsimport_msg").textContent = importText(p);
    while (!p.done) { p = await api("POST", "admin/api/documents/import"); $("jsimport_msg").textContent = importText(p); }
    await Promise.all([loadKeys(), loadDocs(), loadModels()]);
  } catch (e) { $("jsimport_msg").textContent = e.message; }
});

async function start() { show(true); loadImport(); await Promise.all([loadKeys(), loadSettings(), loadDocs(), loadModels()]); await Promise.all([loadUsage(), loadConversations()]); }

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault(); $("login_msg").textContent = "";
  try { csrf = (await api("POST", "admin/api/login", {password: $("password").value})).csrf_token; $("password").value = ""; await start(); }
  catch (e) { $("login_msg").textContent = e.message; }
});
$("logout").addEventListener("click", async (ev) => { ev.preventDefault(); await api("POST", "admin/api/logout").catch(() => {}); csrf = ""; show(false); });
$("newkey").addEventListener("submit", async (ev) => {
  ev.preventDefault(); $("keys_msg").textContent = "";
  const body = {name: $("keyname").value};
  for (const [id, field] of [["key_rpm", "rpm"], ["key_tpm", "tpm"], ["key_quota", "token_quota"]]) {
    if ($(id).value !== "") body[field] = Number($(id).value);
  }
  if ($("key_expires").value) body.expires_at = new Date($("key_expires").value).toISOString();
  const models = $("key_models").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
  if (models.length) body.models = models;
  try { const k = await api("POST", "admin/api/keys", body); $("secret").textContent = k.key; $("newsecret").hidden = false; $("newkey").reset(); await loadKeys(); }
  catch (e) { $("keys_msg").textContent = e.message; }
});
$("settings").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = {ai: {}, rag: {}, fallback: {}, image: {}};
  for (const f of fields) {
    const el = $(f), [a, b] = f.split(".");
    let v = el.type === "checkbox" ? el.checked : el.type === "number" ? Number(el.value) : el.value;
    if (f === "draw_triggers") v = el.value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
    if (b) body[a][b] = v; else body[a] = v;
  }
  const msg = $("settings_msg");
  try { await api("PUT", "admin/api/settings", body); await loadSettings(); msg.className = "ok"; msg.textContent = EN ? "Saved." : "已保存。"; }
  catch (e) { msg.className = "err"; msg.textContent = e.message; }
});
fetch("admin/api/setup").then((r) => r.json()).then(async (s) => {
  if (!s.initialized) { location.href = "setup"; return; }
  try { csrf = (await api("GET", "admin/api/session")).csrf_token; await start(); } catch { show(false); }
});
