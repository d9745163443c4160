// API keys: create (the secret shown once, with a copy button), list
// with last use, usage and spend, edit limits, revoke.
import {$, T, api, el, row, button, badge, num, money, when, list, numberOf, clearErrors, showError, confirmed, copy, keyList} from "./lib.js";

const form = $("key_form");
let editing = null; // the key whose limits are edited, or null for a new key
let currency = "";

// limits says a key's limits in a few words.
function limits(k) {
  const parts = [];
  if (k.rpm) parts.push(`${num(k.rpm)} RPM`);
  if (k.tpm) parts.push(`${num(k.tpm)} TPM`);
  if (k.token_quota) parts.push(T(`额度 ${num(k.token_quota)}`, `quota ${num(k.token_quota)}`));
  if (k.budget) parts.push(T("预算 ", "budget ") + money(k.budget, currency));
  if (k.monthly_budget) parts.push(T("月预算 ", "monthly ") + money(k.monthly_budget, currency));
  if (k.models && k.models.length) parts.push(T("模型：", "models: ") + k.models.join(", "));
  if (k.allowed_ips && k.allowed_ips.length) parts.push("IP: " + k.allowed_ips.join(", "));
  if (k.expires_at) parts.push(T("到期 ", "expires ") + when(k.expires_at));
  return parts.join(" · ") || T("不限", "none");
}

export async function load() {
  const [data, settings] = await Promise.all([keyList(), api("GET", "admin/api/settings")]);
  currency = settings.currency || "";
  const tbody = $("keys"), now = Date.now();
  tbody.replaceChildren(...data.map((k) => {
    const expired = k.expires_at && new Date(k.expires_at).getTime() <= now;
    const state = k.revoked_at ? badge("revoked", T("已撤销", "revoked")) : expired ? badge("expired", T("已过期", "expired")) : null;
    return row(tbody, [
      el("div", {data: {key: k.id}}, el("b", {text: k.name}), " ", state),
      el("code", {text: k.hint}),
      el("span", {class: "limits", text: limits(k)}),
      when(k.last_used_at),
      num(k.usage.tokens),
      `${money(k.usage.spent, currency)} / ${money(k.usage.spent_month, "")}`,
      k.revoked_at ? "" : el("div", null,
        button(T("编辑限制", "Edit limits"), "ghost small", () => edit(k)),
        button(T("撤销", "Revoke"), "danger small", () => revoke(k))),
    ]);
  }));
}

const localTime = (t) => {
  if (!t) return "";
  const d = new Date(t);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};

function edit(k) {
  editing = k;
  clearErrors(form);
  $("key_form_title").textContent = k ? T("编辑限制：", "Edit limits: ") + k.name : T("新密钥", "New key");
  $("key_name_row").hidden = !!k;
  $("keyname").value = "";
  const v = (x) => (x ? String(x) : "");
  $("key_rpm").value = v(k && k.rpm); $("key_tpm").value = v(k && k.tpm); $("key_quota").value = v(k && k.token_quota);
  $("key_budget").value = v(k && k.budget); $("key_monthly").value = v(k && k.monthly_budget);
  $("key_expires").value = localTime(k && k.expires_at);
  $("key_models").value = k && k.models ? k.models.join(", ") : "";
  $("key_ips").value = k && k.allowed_ips ? k.allowed_ips.join(", ") : "";
  $("newsecret").hidden = true;
  form.hidden = false;
  (k ? $("key_rpm") : $("keyname")).focus();
}

async function revoke(k) {
  if (!(await confirmed(T(`撤销密钥“${k.name}”？使用它的客户端会立刻被拒绝，且无法恢复。`, `Revoke the key "${k.name}"? Clients using it are refused at once; this cannot be undone.`)))) return;
  try { await api("DELETE", "admin/api/keys/" + encodeURIComponent(k.id)); await load(); }
  catch (e) { $("keys_msg").textContent = e.message; }
}

// body is the form's limits as the API takes them (an empty field: no
// limit).
function body() {
  const out = {models: list($("key_models").value), allowed_ips: list($("key_ips").value)};
  for (const [id, field] of [["key_rpm", "rpm"], ["key_tpm", "tpm"], ["key_quota", "token_quota"], ["key_budget", "budget"], ["key_monthly", "monthly_budget"]]) {
    const v = numberOf($(id), undefined);
    if (v !== undefined) out[field] = v;
  }
  if ($("key_expires").value) out.expires_at = new Date($("key_expires").value).toISOString();
  return out;
}

$("key_new").addEventListener("click", () => edit(null));
$("key_cancel").addEventListener("click", () => { form.hidden = true; });
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors(form);
  try {
    if (editing) {
      await api("PUT", "admin/api/keys/" + encodeURIComponent(editing.id), body());
    } else {
      const k = await api("POST", "admin/api/keys", {name: $("keyname").value.trim(), ...body()});
      $("secret").textContent = k.key;
      $("secret_copied").textContent = "";
      $("newsecret").hidden = false;
    }
    form.hidden = true;
    await load();
  } catch (e) { showError(form, e); }
});
$("secret_copy").addEventListener("click", async () => {
  const done = await copy($("secret").textContent, $("secret"));
  $("secret_copied").textContent = done ? T("已复制", "Copied") : T("已选中，请按 Ctrl+C", "Selected: press Ctrl+C");
});
