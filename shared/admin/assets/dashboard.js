// The dashboard: totals, charts over time (split by key, model or
// channel), the top keys and models, and each channel's health.
import {$, T, EN, api, el, row, badge, num, money} from "./lib.js";
import {draw, color} from "./chart.js";

let last = null; // the stats drawn, redrawn when the page is resized

// bucketLabel names a bucket: an hour in the admin's time; a day as the
// UTC day it counts (days are UTC days).
function bucketLabel(t, bucket) {
  const d = new Date(t);
  return bucket === "hour" ? String(d.getHours()).padStart(2, "0") + ":00" : (d.getUTCMonth() + 1) + "/" + d.getUTCDate();
}

// Errors keep their own colour (red, the palette's fourth); the series of
// a split take the others.
const ERRORS = 3;
const splitColor = (i) => color(i >= ERRORS ? i + 1 : i);

const statusText = {ok: T("正常", "OK"), cooling: T("冷却中", "Cooling down"), probing: T("待探测", "Probing"), disabled: T("已停用", "Disabled")};

export async function load() {
  const q = new URLSearchParams({range: $("dash_range").value});
  if ($("dash_bucket").value) q.set("bucket", $("dash_bucket").value);
  if ($("dash_by").value) q.set("by", $("dash_by").value);
  $("dash_msg").textContent = "";
  const [stats, chans, keys] = await Promise.all([
    api("GET", "admin/api/stats?" + q),
    api("GET", "admin/api/channels").catch(() => ({data: []})),
    api("GET", "admin/api/keys"),
  ]);
  const names = Object.fromEntries(keys.data.map((k) => [k.id, k.name]));
  const chNames = Object.fromEntries(chans.data.map((c) => [c.id, c.name]));
  last = {stats, names, chNames};
  totals(stats);
  charts();
  const top = (tbody, items, name) => tbody.replaceChildren(...items.map((r) =>
    row(tbody, [name(r.name), num(r.requests), num(r.prompt_tokens + r.completion_tokens), money(r.cost, stats.currency)])));
  top($("dash_keys"), stats.top_keys, (id) => names[id] || id);
  top($("dash_models"), stats.top_models, (m) => m);
  health(stats, chans.data);
}

function totals(s) {
  const t = s.totals, cur = s.currency;
  const tile = (label, value, id) => el("div", {class: "tile", id}, el("b", {text: value}), el("span", {text: label}));
  $("dash_totals").replaceChildren(
    tile(T("请求", "Requests"), num(t.requests), "tot_requests"),
    tile(T("令牌", "Tokens"), num(t.prompt_tokens + t.completion_tokens), "tot_tokens"),
    tile(T("错误", "Errors"), num(t.errors), "tot_errors"),
    tile(T("延迟 p50 / p95", "Latency p50 / p95"), `${num(t.p50_ms)} / ${num(t.p95_ms)} ms`, "tot_latency"),
    tile(T("费用", "Cost"), money(t.cost, cur), "tot_cost"),
    tile(T("缓存命中", "Cache hits"), num(t.cache_hits), "tot_cache"),
  );
}

// charts draws the series: one bar per bucket, stacked by the split when
// there is one.
function charts() {
  if (!last) return;
  const {stats: s, names, chNames} = last;
  const labels = s.series.map((p) => bucketLabel(p.time, s.bucket));
  const by = $("dash_by").value;
  const splitName = (sp) => sp.other ? T("其他", "Other") : by === "key" ? (names[sp.name] || sp.name) : by === "channel" ? (chNames[sp.name] || (sp.name === "none" ? T("无渠道", "none") : sp.name)) : sp.name;
  const split = (field) => (s.split && s.split.length ? s.split : [{name: T("全部", "All"), series: s.series}])
    .map((sp, i) => ({name: s.split && s.split.length ? splitName(sp) : sp.name, color: splitColor(i), values: sp.series.map(field)}));
  const errors = {name: T("错误", "Errors"), color: color(ERRORS), values: s.series.map((p) => p.errors)};
  const ok = split((p) => p.requests - p.errors).map((x) => ({...x, name: s.split && s.split.length ? x.name : T("成功", "Answered")}));
  draw($("chart_requests"), {labels, series: [...ok, errors]});
  draw($("chart_tokens"), {labels, series: split((p) => p.prompt_tokens + p.completion_tokens)});
  draw($("chart_latency"), {labels, kind: "line", format: (v) => v + " ms", series: [
    {name: "p50", color: color(0), values: s.series.map((p) => (p.requests ? p.p50_ms : null))},
    {name: "p95", color: color(1), values: s.series.map((p) => (p.requests ? p.p95_ms : null))}]});
  draw($("chart_cost"), {labels, format: (v) => money(v, s.currency), series: split((p) => p.cost)});
  draw($("chart_cache"), {labels, series: split((p) => p.cache_hits)});
}

// health shows every channel: its breaker and its use over the range.
function health(stats, chans) {
  const used = Object.fromEntries(stats.channels.map((c) => [c.name, c]));
  const cards = chans.map((c) => {
    const u = used[c.id] || {requests: 0, errors: 0, failures: 0, p50_ms: 0};
    const status = c.enabled ? c.health.status : "disabled";
    return el("div", {class: "card", data: {channel: c.id}},
      el("div", null, el("span", {class: "dot " + status}), el("b", {text: c.name}), " ", badge(status, c.enabled ? statusText[status] : T("已关闭", "Off"))),
      el("div", {class: "muted", text: EN
        ? `${num(u.requests)} requests · ${num(u.errors)} errors · ${num(u.failures)} failovers · p50 ${num(u.p50_ms)} ms`
        : `${num(u.requests)} 次请求 · ${num(u.errors)} 次错误 · ${num(u.failures)} 次切换 · p50 ${num(u.p50_ms)} ms`}),
      c.health.reason ? el("div", {class: "err", text: c.health.reason}) : null);
  });
  if (!cards.length) cards.push(el("p", {class: "muted", text: T("还没有渠道。", "No channels yet.")}));
  $("dash_channels").replaceChildren(...cards);
}

for (const id of ["dash_range", "dash_bucket", "dash_by"]) $(id).addEventListener("change", () => load().catch((e) => { $("dash_msg").textContent = e.message; }));
let resizing = 0;
window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(() => { if (!$("page-dashboard").hidden) charts(); }, 150); });
