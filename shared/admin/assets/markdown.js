// A safe markdown renderer for the conversations the console shows: it
// builds DOM nodes (text is only ever textContent, never markup), so a
// message of hostile HTML shows as its text. Blocks: fenced code,
// headings, lists, quotes, paragraphs; inline: code, bold, italics,
// links (http and https) and images (data: pictures and the gateway's own
// /files/; others show as links).

// Markdown beyond this many characters shows as plain text: rendering
// stays fast whatever a client sent.
const MAX_MARKDOWN = 200000;

const safeURL = (u) => {
  try {
    const url = new URL(u, location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url : null;
  } catch { return null; }
};

// image returns an <img> for a source the console may show: a data: image
// of a common type, or a picture the gateway itself keeps (/files/); null
// for anything else, which must not make the admin's browser call out
// (or into the admin API with its cookies).
export function image(src, alt) {
  let ok = /^data:image\/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+$/.test(src);
  if (!ok) {
    const url = safeURL(src);
    ok = !!url && url.origin === location.origin && /^\/files\/[A-Za-z0-9._-]+$/.test(url.pathname);
  }
  if (!ok) return null;
  const img = document.createElement("img");
  img.src = src; img.alt = alt || ""; img.loading = "lazy"; img.referrerPolicy = "no-referrer";
  return img;
}

// The inline spans. Every class excludes its own delimiters and is
// bounded, so a line of unclosed brackets or backticks costs linear
// time, not quadratic.
const spans = /`([^`\n]{1,2000})`|!\[([^\][\n]{0,500})\]\(([^()\s]{1,4000})\)|\[([^\][\n]{1,500})\]\(([^()\s]{1,4000})\)|\*\*([^*\n]{1,2000})\*\*|__([^_\n]{1,2000})__|\*([^*\s][^*\n]{0,2000})\*/g;

function inline(text, into) {
  let last = 0, m;
  spans.lastIndex = 0;
  while ((m = spans.exec(text))) {
    if (m.index > last) into.append(text.slice(last, m.index));
    last = spans.lastIndex;
    if (m[1] !== undefined) { const c = document.createElement("code"); c.textContent = m[1]; into.append(c); }
    else if (m[3] !== undefined) {
      const img = image(m[3], m[2]), url = safeURL(m[3]);
      into.append(img || (url ? link(url, m[2] || url.href) : m[0]));
    } else if (m[5] !== undefined) {
      const url = safeURL(m[5]);
      into.append(url ? link(url, m[4]) : m[0]);
    } else {
      const b = document.createElement(m[6] !== undefined || m[7] !== undefined ? "strong" : "em");
      b.textContent = m[6] ?? m[7] ?? m[8]; into.append(b);
    }
  }
  if (last < text.length) into.append(text.slice(last));
}

function link(url, text) {
  const a = document.createElement("a");
  a.href = url.href; a.textContent = text; a.rel = "noopener noreferrer nofollow"; a.target = "_blank";
  return a;
}

// render returns the nodes of a markdown text (a text too long for it:
// the text itself).
export function render(md, depth = 0) {
  const out = document.createDocumentFragment();
  if (String(md).length > MAX_MARKDOWN) {
    const p = document.createElement("p");
    p.style.whiteSpace = "pre-wrap";
    p.textContent = md;
    out.append(p);
    return out;
  }
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
    if (/^\s*>/.test(line) && depth < 8) {
      flush();
      const q = document.createElement("blockquote"), body = [];
      for (; i < lines.length && /^\s*>/.test(lines[i]); i++) body.push(lines[i].replace(/^\s*>\s?/, ""));
      q.append(render(body.join("\n"), depth + 1)); out.append(q);
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
