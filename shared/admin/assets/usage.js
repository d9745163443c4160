// Usage: daily rows by key and model, filtered by days, key and model,
// and the records behind them exported as CSV or JSON lines.
import {$, T, api, el, row, num, money, clearErrors, showError, keyList} from "./lib.js";

const form = $("usage_filter");
const day = (d) => d.toISOString().slice(0, 10);

function query() {
  const q = new URLSearchParams();
  for (const name of ["from", "to", "key_id", "model"]) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, v);
  }
  return q;
}

// links points the export buttons at the records the filters select.
function links() {
  const q = query();
  for (const f of ["csv", "jsonl"]) {
    q.set("format", f);
    $("export_" + f).href = "admin/api/usage/export?" + q;
  }
}

export async function load() {
  if (!$("usage_from").value) {
    const now = new Date();
    $("usage_to").value = day(now);
    $("usage_from").value = day(new Date(now.getTime() - 6 * 86400000));
  }
  const [keys, settings] = await Promise.all([keyList(), api("GET", "admin/api/settings")]);
  const sel = $("usage_key"), chosen = sel.value;
  sel.replaceChildren(el("option", {value: "", text: T("全部", "All")}), ...keys.map((k) => el("option", {value: k.id, text: k.name})));
  sel.value = chosen;
  const names = Object.fromEntries(keys.map((k) => [k.id, k.name]));
  clearErrors(form);
  links();
  let report;
  try { report = await api("GET", "admin/api/usage?" + query()); } catch (e) { showError(form, e); return; }
  const tbody = $("usage");
  tbody.replaceChildren(...report.data.map((r) => row(tbody, [r.day, names[r.key_id] || r.key_id, r.model, num(r.requests),
    num(r.total_tokens), num(r.errors), money(r.cost, settings.currency)])));
  if (!report.data.length) tbody.replaceChildren(el("tr", null, el("td", {colspan: 7, class: "muted", text: T("这段时间没有用量。", "No usage in these days.")})));
}

form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
form.addEventListener("input", links);
