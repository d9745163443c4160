// A safe markdown renderer for the conversations the console shows: it
// builds DOM nodes (text is only ever textContent, never markup), so a
// message of hostile HTML shows as its text. Blocks: fenced code,
// headings, lists, quotes, paragraphs; inline: code, bold, italics,
// links and images (http, https and the gateway's own; images from
// elsewhere, which the CSP would block, show as links).

const safeURL = (u) => {
  try {
    const url = new URL(u, location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url : null;
  } catch { return null; }
};

function inline(text, into) {
  // Code spans first, then images, links, bold and italics.
  const re = /(`+)([\s\S]*?)\1|!\[([^\]]*)\]\(([^)\s]+)\)|\[([^\]]+)\]\(([^)\s]+)\)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    if (m.index > last) into.append(text.slice(last, m.index));
    last = re.lastIndex;
    if (m[1]) { const c = document.createElement("code"); c.textContent = m[2]; into.append(c); }
    else if (m[4] !== undefined) {
      const url = safeURL(m[4]);
      if (url && url.origin === location.origin) {
        const img = document.createElement("img"); img.src = url.href; img.alt = m[3]; img.loading = "lazy"; into.append(img);
      } else if (url) { into.append(link(url, m[3] || url.href)); }
      else into.append(m[0]);
    } else if (m[6] !== undefined) {
      const url = safeURL(m[6]);
      if (url) into.append(link(url, m[5])); else into.append(m[0]);
    } else {
      const b = document.createElement(m[7] || m[8] ? "strong" : "em");
      b.textContent = m[7] || m[8] || m[9]; into.append(b);
    }
  }
  if (last < text.length) into.append(text.slice(last));
}

function link(url, text) {
  const a = document.createElement("a");
  a.href = url.href; a.textContent = text; a.rel = "noopener noreferrer nofollow"; a.target = "_blank";
  return a;
}

// render returns the nodes of a markdown text.
export function render(md) {
  const out = document.createDocumentFragment();
  const lines = String(md).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  const para = [];
  const flush = () => {
    if (!para.length) return;
    const p = document.createElement("p");
    para.forEach((l, j) => { if (j) p.append(document.createElement("br")); inline(l, p); });
    out.append(p); para.length = 0;
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```+|~~~+)\s*([\w+-]*)/);
    if (fence) {
      flush();
      const body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
      i++;
      const pre = document.createElement("pre"), code = document.createElement("code");
      if (fence[2]) code.dataset.lang = fence[2];
      code.textContent = body.join("\n"); pre.append(code); out.append(pre);
      continue;
    }
    const h = line.match(/^(#{1,6})\s+(.*)$/);
    if (h) { flush(); const e = document.createElement("h" + Math.min(6, h[1].length + 2)); inline(h[2], e); out.append(e); i++; continue; }
    if (/^\s*>/.test(line)) {
      flush();
      const q = document.createElement("blockquote"), body = [];
      for (; i < lines.length && /^\s*>/.test(lines[i]); i++) body.push(lines[i].replace(/^\s*>\s?/, ""));
      q.append(render(body.join("\n"))); out.append(q);
      continue;
    }
    const item = /^\s*([-*+]|\d+[.)])\s+/;
    if (item.test(line)) {
      flush();
      const ordered = /^\s*\d/.test(line), l = document.createElement(ordered ? "ol" : "ul");
      for (; i < lines.length && item.test(lines[i]); i++) {
        const li = document.createElement("li"); inline(lines[i].replace(item, ""), li); l.append(li);
      }
      out.append(l);
      continue;
    }
    if (!line.trim()) { flush(); i++; continue; }
    para.push(line); i++;
  }
  flush();
  return out;
}
