"use strict";
const $ = (id) => document.getElementById(id);
const EN = document.body.dataset.lang === "en";
const mismatch = EN ? "The passwords do not match." : "两次输入的密码不一致。";
$("setup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("msg").textContent = "";
  if ($("pw").value !== $("pw2").value) { $("msg").textContent = mismatch; return; }
  const body = {
    admin_password: $("pw").value,
    ai: {base_url: $("ai_base").value.trim(), api_key: $("ai_key").value.trim(), model: $("ai_model").value.trim()},
  };
  if ($("rag_base").value.trim()) {
    body.rag = {base_url: $("rag_base").value.trim(), api_key: $("rag_key").value.trim(), model: $("rag_model").value.trim()};
  }
  const res = await fetch("admin/api/setup", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await res.json().catch(() => ({}));
  if (res.status !== 201) { $("msg").textContent = (data.error && data.error.message) || res.statusText; return; }
  $("setup").hidden = true;
  $("key").textContent = data.api_key;
  $("done").hidden = false;
});
$("copy").addEventListener("click", () => navigator.clipboard.writeText($("key").textContent));
