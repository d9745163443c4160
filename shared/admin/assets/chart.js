// Charts of the dashboard, drawn as SVG (no library: a few bars and
// lines are all it needs). Each bucket has a hover area whose title
// shows its values; the svg carries data-total, the sum of every value
// drawn, and data-buckets.

const NS = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs) => {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
};

// color returns the i-th colour of the style sheet's palette (--c1 to
// --c9; SVG attributes take no var()).
export function color(i) {
  return getComputedStyle(document.documentElement).getPropertyValue("--c" + ((i % 9) + 1)).trim() || "#2563eb";
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const short = (v) => {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1).replace(/\.0$/, "") + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (a > 0 && a < 1) return v.toPrecision(2);
  return String(Math.round(v * 100) / 100);
};

// draw renders a chart into box: labels (one per bucket), series
// [{name, values, color}], kind "bar" (stacked) or "line", and format for
// the values in titles.
export function draw(box, {labels, series, kind = "bar", format = short}) {
  const width = Math.max(box.clientWidth || 0, 260), height = 170;
  const pad = {l: 38, r: 6, t: 8, b: 20};
  const w = width - pad.l - pad.r, h = height - pad.t - pad.b, n = labels.length || 1;
  const sums = labels.map((_, i) => series.reduce((s, x) => s + (x.values[i] || 0), 0));
  const top = niceMax(kind === "bar" ? Math.max(0, ...sums) : Math.max(0, ...series.flatMap((s) => s.values.map((v) => v || 0))));
  const y = (v) => pad.t + h - (v / top) * h;
  const svg = svgEl("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img"});
  let total = 0;
  for (const s of series) for (const v of s.values) total += v || 0;
  svg.dataset.total = String(Math.round(total * 1e6) / 1e6);
  svg.dataset.buckets = String(labels.length);
  for (let g = 0; g <= 4; g++) {
    const v = (top * g) / 4, yy = y(v);
    svg.append(svgEl("line", {class: g ? "grid" : "axis", x1: pad.l, x2: width - pad.r, y1: yy, y2: yy}));
    const t = svgEl("text", {x: pad.l - 4, y: yy + 3, "text-anchor": "end"}); t.textContent = short(v); svg.append(t);
  }
  const step = w / n, every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(w / 70))));
  labels.forEach((lab, i) => {
    if (i % every) return;
    const t = svgEl("text", {x: pad.l + step * (i + 0.5), y: height - 5, "text-anchor": "middle"}); t.textContent = lab; svg.append(t);
  });
  if (kind === "bar") {
    const bw = Math.max(1, step * 0.72);
    labels.forEach((_, i) => {
      let base = 0;
      for (const s of series) {
        const v = s.values[i] || 0;
        if (v > 0) svg.append(svgEl("rect", {class: "bar", x: pad.l + step * i + (step - bw) / 2, y: y(base + v), width: bw, height: Math.max(0.5, y(base) - y(base + v)), fill: s.color}));
        base += v;
      }
    });
  } else {
    // A null value (a bucket with nothing to measure) breaks the line; a
    // lone point shows as a dot.
    for (const s of series) {
      let run = [];
      const end = () => {
        if (run.length === 1) svg.append(svgEl("circle", {cx: run[0][0], cy: run[0][1], r: 2.5, fill: s.color}));
        else if (run.length) svg.append(svgEl("polyline", {points: run.map((p) => p.join(",")).join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round"}));
        run = [];
      };
      s.values.forEach((v, i) => { if (v === null) end(); else run.push([(pad.l + step * (i + 0.5)).toFixed(1), y(v).toFixed(1)]); });
      end();
    }
  }
  // Hover areas: a title with the bucket's values.
  labels.forEach((lab, i) => {
    const r = svgEl("rect", {class: "hit", x: pad.l + step * i, y: pad.t, width: step, height: h});
    const title = svgEl("title");
    title.textContent = lab + "\n" + series.map((s) => `${s.name}: ${s.values[i] === null ? "—" : format(s.values[i] || 0)}`).join("\n");
    r.append(title); svg.append(r);
  });
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const s of series) {
    const item = document.createElement("span"), sw = document.createElement("i");
    sw.style.background = s.color; item.append(sw, s.name); legend.append(item);
  }
  box.replaceChildren(svg, legend);
}
