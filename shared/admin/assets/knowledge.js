// Knowledge: upload files (with a progress bar; a file larger than a
// request may carry goes straight to the blob store), paste text, see
// each document's status, delete, try retrieval, and import the
// JavaScript gateway's files.
import {$, T, EN, api, csrfToken, send, el, row, button, badge, num, when, list, numberOf, clearErrors, showError, say, confirmed} from "./lib.js";

// The largest file posted through the API; larger ones (and any the API
// refuses as too large) go to the direct upload.
const MAX_API_UPLOAD = Number(document.body.dataset.maxUpload);
const statusText = {ready: T("就绪", "ready"), processing: T("处理中", "processing"), uploading: T("上传中", "uploading"), failed: T("失败", "failed")};
let polling = 0;

export async function load() {
  loadImport();
  await refresh();
}

// refresh shows the documents.
async function refresh() {
  const {data} = await api("GET", "admin/api/documents");
  const tbody = $("docs");
  tbody.replaceChildren(...data.map((d) => row(tbody, [
    el("div", null, el("b", {text: d.title}), d.filename && d.filename !== d.title ? el("div", {class: "muted", text: d.filename}) : null),
    d.knowledge_base,
    el("div", {class: "doc-status", data: {status: d.status}}, badge(d.status, statusText[d.status] || d.status), d.reason ? el("div", {class: "err", text: d.reason}) : null),
    num(d.chunks),
    when(d.updated_at),
    button(T("删除", "Delete"), "danger small", () => remove(d)),
  ])));
  if (!data.length) tbody.replaceChildren(el("tr", null, el("td", {colspan: 6, class: "muted", text: T("还没有文档。", "No documents yet.")})));
  // While documents are on their way, look again, less often as time
  // goes (a direct upload whose file never comes waits an hour).
  clearTimeout(polling);
  const busy = data.filter((d) => d.status === "processing" || d.status === "uploading");
  if (busy.length) {
    const age = Date.now() - Math.max(...busy.map((d) => new Date(d.updated_at).getTime()));
    const wait = age < 60000 ? 1500 : age < 600000 ? 10000 : 60000;
    polling = setTimeout(() => { if (!$("page-knowledge").hidden) refresh().catch(() => {}); }, wait);
  }
}

async function remove(d) {
  if (!(await confirmed(T(`删除文档“${d.title}”？它的分块会从检索中移除。`, `Delete "${d.title}"? Its chunks leave retrieval.`)))) return;
  try { await api("DELETE", "admin/api/documents/" + encodeURIComponent(d.id)); await refresh(); }
  catch (e) { $("docs_msg").textContent = e.message; }
}

// upload sends a file, showing how far it got.
async function upload(file, kb, progress) {
  if (file.size <= MAX_API_UPLOAD) {
    const formData = new FormData();
    formData.append("file", file);
    formData.append("knowledge_base", kb);
    try {
      return await send("POST", "admin/api/documents", formData, {"X-CSRF-Token": csrfToken()}, progress);
    } catch (e) { if (e.status !== 413) throw e; }
  }
  const start = await api("POST", "admin/api/documents/uploads", {filename: file.name, size: file.size, content_type: file.type, knowledge_base: kb});
  progress(0);
  try {
    await send("PUT", start.upload.url, file, start.upload.headers, progress);
  } catch (e) {
    // The document waits for its file: take it away again.
    await api("DELETE", "admin/api/documents/" + encodeURIComponent(start.document.id)).catch(() => {});
    throw e;
  }
  return start;
}

const fileForm = $("docfile");
fileForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(fileForm);
  const file = $("docfile_input").files[0];
  if (!file) { showError(fileForm, {message: T("请选择一个文件。", "Pick a file.")}); return; }
  const bar = $("upload_bar"), pct = $("upload_pct");
  $("upload_progress").hidden = false;
  const progress = (f) => { bar.value = Math.round(f * 100); pct.textContent = Math.round(f * 100) + "%"; };
  progress(0);
  try {
    await upload(file, $("docfile_kb").value.trim() || "default", progress);
    say(fileForm, T(`已上传 ${file.name}，正在处理…`, `Uploaded ${file.name}; processing…`), "ok");
    $("docfile_input").value = "";
    await refresh();
  } catch (e) { showError(fileForm, e); }
});

const textForm = $("doctext");
textForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(textForm);
  try {
    await api("POST", "admin/api/documents", {title: $("doctext_title").value, text: $("doctext_body").value, knowledge_base: $("doctext_kb").value.trim() || "default"});
    say(textForm, T("已保存。", "Saved."), "ok");
    $("doctext_title").value = ""; $("doctext_body").value = "";
    await refresh();
  } catch (e) { showError(textForm, e); }
});

// Try retrieval: the chunks a question pulls in, with their scores.
const tryForm = $("try");
tryForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(tryForm);
  $("try_hits").replaceChildren();
  try {
    const body = {query: $("try_query").value, knowledge_bases: list($("try_kbs").value)};
    const k = numberOf($("try_topk"), 0);
    if (k) body.top_k = k;
    const r = await api("POST", "admin/api/documents/search", body);
    const score = (h) => [`score ${h.score.toFixed(3)}`, h.cosine ? `cosine ${h.cosine.toFixed(3)}` : "", h.rerank ? `rerank ${h.rerank.toFixed(3)}` : ""].filter(Boolean).join(" · ");
    $("try_hits").replaceChildren(...(r.data.length ? r.data.map((h) => el("div", {class: "hit"},
      el("div", null, el("b", {text: h.title}), h.heading ? " › " + h.heading : "", el("span", {class: "muted", text: `  #${h.chunk} · ${h.knowledge_base} · ${score(h)}`})),
      el("p", {text: h.text}))) : [el("p", {class: "muted", text: T(`没有分数高于 ${r.min_score} 的片段。`, `No chunk scored above ${r.min_score}.`)})]));
  } catch (e) { showError(tryForm, e); }
});

// The import from the JavaScript gateway, where its data is (a Worker
// on its bindings): how far it came, and a button to go on or run it
// again.
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
    await load();
  } catch (e) { $("jsimport_msg").textContent = e.message; }
});
