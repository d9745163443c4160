// Settings: every setting of the gateway but the upstreams (which are
// channels), saved as a patch of the fields the admin edited (nothing
// else is sent, so a field the browser normalises stays as stored), each
// error shown next to its field.
import {$, T, api, el, button, list, numberOf, clearErrors, showError, say} from "./lib.js";

const form = $("settings");
const edited = new Set(); // the names of the fields edited since loaded
let pricesEdited = false;

const get = (obj, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
function put(obj, path, v) {
  const keys = path.split("."), lastKey = keys.pop();
  let o = obj;
  for (const k of keys) o = o[k] ??= {};
  o[lastKey] = v;
}

// The fields whose value is a list, typed comma-separated.
const lists = new Set(["draw_triggers", "admin_allowed_ips"]);
const fields = () => [...form.querySelectorAll("[name]")].filter((f) => !f.closest("#price_rows"));

function value(f) {
  if (f.type === "checkbox") return f.checked;
  if (f.type === "number") return numberOf(f, 0);
  if (lists.has(f.name)) return list(f.value);
  return f.value;
}

const priceFields = [["model", T("模型（可用 *）", "Model (* globs)"), "text"], ["input", T("输入", "Input"), "number"],
  ["output", T("输出", "Output"), "number"], ["cached_hit", T("缓存命中（每次）", "Cached hit (each)"), "number"], ["image", T("每张图片", "Per image"), "number"]];

function priceRow(p) {
  return el("div", {class: "rowedit"}, priceFields.map(([k, label, type]) => el("div", null, el("label", {text: label}),
    el("input", {type, step: type === "number" ? "any" : undefined, min: type === "number" ? "0" : undefined, value: p[k] ?? "", data: {field: k}}))),
  el("div", null, button(T("移除", "Remove"), "ghost small", (ev) => ev.target.closest(".rowedit").remove())));
}

function prices() {
  const rows = [...$("price_rows").querySelectorAll(".rowedit")];
  return rows.map((r, i) => {
    const p = {};
    for (const input of r.querySelectorAll("input")) {
      input.name = `prices[${i}].${input.dataset.field}`;
      p[input.dataset.field] = input.type === "number" ? numberOf(input, 0) : input.value.trim();
    }
    return p;
  });
}

export async function load() {
  const s = await api("GET", "admin/api/settings");
  edited.clear();
  pricesEdited = false;
  clearErrors(form);
  for (const f of fields()) {
    const v = get(s, f.name);
    if (f.type === "checkbox") f.checked = !!v;
    else f.value = Array.isArray(v) ? v.join(", ") : v ?? "";
  }
  $("price_rows").replaceChildren(...(s.prices || []).map(priceRow));
}

$("price_add").addEventListener("click", () => { pricesEdited = true; $("price_rows").append(priceRow({})); });
$("price_rows").addEventListener("click", (ev) => { if (ev.target.tagName === "BUTTON") pricesEdited = true; });
form.addEventListener("input", (ev) => {
  if (ev.target.closest("#price_rows")) pricesEdited = true;
  else if (ev.target.name) edited.add(ev.target.name);
});
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(form);
  try {
    const patch = {};
    for (const f of fields()) if (edited.has(f.name)) put(patch, f.name, value(f));
    if (pricesEdited) patch.prices = prices();
    const changed = Object.keys(patch).length > 0;
    if (changed) await api("PUT", "admin/api/settings", patch);
    await load();
    say(form, changed ? T("已保存。", "Saved.") : T("没有改动。", "Nothing changed."), "ok");
  } catch (e) { showError(form, e); }
});
