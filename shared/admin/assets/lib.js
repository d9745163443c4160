// What every page of the console shares: the language, the admin API,
// building DOM (always as text: nothing the API returns becomes markup),
// formats, errors shown next to their field, and confirmations.

export const EN = document.documentElement.lang === "en";
export const T = (zh, en) => (EN ? en : zh);
export const $ = (id) => document.getElementById(id);

let csrf = "";
export function setCSRF(token) { csrf = token; }
export const csrfToken = () => csrf;

// APIError is an error the API answered: its message, status and the
// field (param) it is about.
export class APIError extends Error {
  constructor(message, status, param) { super(message); this.status = status; this.param = param || ""; }
}

// api calls the admin API; a 401 tells the shell the session is gone.
export async function api(method, path, body) {
  const opts = {method, headers: {}};
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  let res;
  try { res = await fetch(path, opts); } catch { throw new APIError(T("连不上网关。", "The gateway cannot be reached."), 0); }
  const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (res.status === 401 && path !== "admin/api/login") document.dispatchEvent(new Event("signedout"));
  if (!res.ok) throw new APIError((data.error && data.error.message) || res.statusText, res.status, data.error && data.error.param);
  return data;
}

// send uploads a body with XMLHttpRequest, which reports upload progress
// (fetch does not): onprogress(fraction) as the bytes go.
export function send(method, url, body, headers, onprogress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    for (const [k, v] of Object.entries(headers || {})) x.setRequestHeader(k, v);
    x.upload.onprogress = (ev) => { if (ev.lengthComputable) onprogress(ev.loaded / ev.total); };
    x.onload = () => {
      let data = {};
      try { data = JSON.parse(x.responseText || "{}"); } catch { /* a blob store's XML */ }
      if (x.status >= 200 && x.status < 300) { onprogress(1); resolve(data); return; }
      reject(new APIError((data.error && data.error.message) || T("上传失败：", "Upload failed: ") + x.status, x.status, data.error && data.error.param));
    };
    x.onerror = () => reject(new APIError(T("上传中断。", "The upload was cut off."), 0));
    x.send(body);
  });
}

// el builds an element: props are properties (text sets textContent,
// class the class name, data a dataset), children are nodes or text.
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k === "data") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

// row is a table row whose cells carry their column's label, which
// phones show beside the value (tables turn into cards there).
export function row(table, cells) {
  const labels = [...table.closest("table").querySelectorAll("thead th")].map((th) => th.textContent);
  return el("tr", null, cells.map((c, i) => {
    const td = c instanceof HTMLElement && c.tagName === "TD" ? c : el("td", null, c);
    if (labels[i]) td.dataset.label = labels[i];
    const th = table.closest("table").querySelectorAll("thead th")[i];
    if (th && th.classList.contains("num")) td.classList.add("num");
    return td;
  }));
}

// numberOf reads a number field: empty gives fallback; what the browser
// could not read as a number ("60e") is an error about that field, not a
// silent empty (which would lift a limit).
export function numberOf(input, fallback) {
  if (input.validity.badInput) throw new APIError(T("请输入一个数字。", "Enter a number."), 400, input.name);
  return input.value === "" ? fallback : Number(input.value);
}

export function button(label, cls, onclick) { return el("button", {type: "button", class: cls, text: label, onclick}); }
export function badge(status, text) { return el("span", {class: "badge " + status, text: text || status}); }

const nf = new Intl.NumberFormat(EN ? "en" : "zh-CN");
export const num = (n) => nf.format(n || 0);
export function money(v, currency) {
  const n = v || 0;
  return (currency ? currency + " " : "") + (n === 0 ? "0" : n < 0.01 ? n.toPrecision(2) : n.toFixed(2));
}
export const when = (t) => (t && !t.startsWith("0001") ? new Date(t).toLocaleString(EN ? "en" : "zh-CN") : "—");
export const list = (s) => s.split(/[,，\n]/).map((x) => x.trim()).filter(Boolean);

// clearErrors takes the messages of a form's last try away.
export function clearErrors(form) {
  for (const e of form.querySelectorAll(".field-err[data-param]")) e.remove();
  for (const e of form.querySelectorAll(".field-err[data-for]")) e.textContent = "";
  for (const e of form.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
  const m = form.querySelector(".form-msg");
  if (m) { m.textContent = ""; m.className = m.className.replace(/\b(ok|err)\b/g, "").trim() + " form-msg"; }
}

// showError puts an API error next to the field it names (its param, as
// the field's name: "rag.top_k", "prices[0].input"; a list field's
// "models[2]" goes to "models"), or under the form.
export function showError(form, err) {
  const param = err.param || "";
  const names = [param, param.replace(/\[\d+\]$/, ""), param.replace(/\[\d+\].*$/, "")];
  for (const name of names) {
    if (!name) continue;
    const field = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (field) {
      field.setAttribute("aria-invalid", "true");
      const msg = el("span", {class: "field-err", text: err.message, data: {param: name}, role: "alert"});
      (field.closest("label.check") || field).after(msg);
      field.focus();
      return;
    }
    const slot = form.querySelector(`.field-err[data-for="${CSS.escape(name)}"]`);
    if (slot) { slot.textContent = err.message; return; }
  }
  say(form, err.message, "err");
}

// say shows a message under a form.
export function say(form, text, cls) {
  const m = form.querySelector(".form-msg") || form.parentElement.querySelector(".form-msg");
  m.textContent = text;
  m.className = "form-msg " + (cls || "");
}

// confirmed asks before something that cannot be undone.
export function confirmed(text) {
  const d = $("confirm");
  $("confirm_text").textContent = text;
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "yes"), {once: true}));
}

// copy puts text on the clipboard, falling back to selecting it.
export async function copy(text, node) {
  try { await navigator.clipboard.writeText(text); return true; } catch {
    const r = document.createRange(); r.selectNodeContents(node); getSelection().removeAllRanges(); getSelection().addRange(r);
    return false;
  }
}

// keyList returns every key, for the pages that show keys by name.
export async function keyList() { return (await api("GET", "admin/api/keys")).data; }
