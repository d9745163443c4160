// The console's shell: signing in and out, the sidebar (a drawer on
// phones), the language switch and the pages, one per #/name.
import {$, T, api, setCSRF, say} from "./lib.js";
import * as dashboard from "./dashboard.js";
import * as channels from "./channels.js";
import * as models from "./models.js";
import * as keys from "./keys.js";
import * as knowledge from "./knowledge.js";
import * as conversations from "./conversations.js";
import * as usage from "./usage.js";
import * as settings from "./settings.js";

const pages = {dashboard, channels, models, keys, knowledge, conversations, usage, settings};

function signedIn(yes) {
  $("login").hidden = yes;
  $("panel").hidden = !yes;
  $("menu").hidden = !yes;
  if (!yes) { setCSRF(""); $("password").focus(); }
}

function drawer(open) {
  document.body.classList.toggle("drawer", open);
  $("menu").setAttribute("aria-expanded", String(open));
}

let showing = 0; // the latest show, which alone says when it is done

// show opens the page the address names (#/keys), the dashboard by
// default.
async function show() {
  if ($("panel").hidden) return;
  const name = location.hash.replace(/^#\/?/, "").split("?")[0];
  const page = pages[name] ? name : "dashboard";
  for (const p of Object.keys(pages)) $("page-" + p).hidden = p !== page;
  for (const a of document.querySelectorAll(".sidebar a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  drawer(false);
  document.title = document.querySelector(`.sidebar a[data-page="${page}"]`).textContent + " · " + T("AI 网关", "AI Gateway");
  // aria-busy tells assistive technology (and the browser tests) when the
  // page has its data.
  const mine = ++showing;
  $("main").setAttribute("aria-busy", "true");
  try { await pages[page].load(); } catch (e) {
    const msg = $("page-" + page).querySelector("[role=alert]");
    if (msg) msg.textContent = e.message;
  } finally { if (mine === showing) $("main").setAttribute("aria-busy", "false"); }
}

async function start() {
  signedIn(true);
  await show();
}

// The language links keep the page the admin is on.
for (const a of document.querySelectorAll("a.lang")) {
  a.addEventListener("click", () => { a.href = a.getAttribute("href").split("#")[0] + location.hash; });
}
$("menu").addEventListener("click", () => drawer(!document.body.classList.contains("drawer")));
$("scrim").addEventListener("click", () => drawer(false));
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") drawer(false); });
window.addEventListener("hashchange", show);
// A link to the page already shown shows it afresh.
for (const a of document.querySelectorAll(".sidebar a[data-page]")) {
  a.addEventListener("click", (ev) => { if (a.hash === location.hash) { ev.preventDefault(); show(); } });
}
document.addEventListener("signedout", () => signedIn(false));

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login_msg").textContent = "";
  try {
    setCSRF((await api("POST", "admin/api/login", {password: $("password").value})).csrf_token);
    $("password").value = "";
    await start();
  } catch (e) { $("login_msg").textContent = e.message; $("password").select(); }
});
$("logout").addEventListener("click", async () => {
  await api("POST", "admin/api/logout").catch(() => {});
  signedIn(false);
});

fetch("admin/api/setup").then((r) => r.json()).then(async (s) => {
  if (!s.initialized) { location.href = "setup"; return; }
  try { setCSRF((await api("GET", "admin/api/session")).csrf_token); } catch { signedIn(false); return; }
  await start();
}).catch(() => { signedIn(false); say($("login"), T("连不上网关。", "The gateway cannot be reached."), "err"); });
