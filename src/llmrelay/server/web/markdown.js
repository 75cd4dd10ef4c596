// Markdown answers as sanitised DOM: marked turns the (untrusted) model text into HTML,
// raw HTML in it is shown as text, DOMPurify sanitises the result; links open in a new
// tab without an opener; remote images are links, never fetched; code blocks get a bar
// with their language and a Copy button.

const { marked, DOMPurify } = globalThis;  // the vendored UMD builds

const md = new marked.Marked({
  gfm: true,
  breaks: false,
  // Raw HTML in an answer is shown as the text it is, never as markup.
  renderer: { html: ({ text }) => escapeHtml(text) },
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "button", "textarea", "select", "option", "iframe", "object",
    "embed", "svg", "math", "dialog", "template"],
  FORBID_ATTR: ["style", "id", "name", "srcset"],
  RETURN_DOM_FRAGMENT: true,
};

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Sanitised DOM of Markdown `source` (or of parsed tokens), ready to insert.
export function markdownFragment(sourceOrTokens) {
  const html = typeof sourceOrTokens === "string" ? md.parse(sourceOrTokens) : md.parser(sourceOrTokens);
  const fragment = DOMPurify.sanitize(html, PURIFY);
  for (const a of fragment.querySelectorAll("a[href]")) {
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
  }
  for (const input of fragment.querySelectorAll("input")) {
    if (input.type !== "checkbox") input.remove(); else input.disabled = true;  // task lists
  }
  for (const img of fragment.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (/^(data:image\/|blob:)/i.test(src)) continue;
    // A remote image is not fetched (offline page, no tracking): a link to it instead.
    const link = document.createElement("a");
    link.textContent = "🖼 " + (img.alt || src);
    if (src) { link.href = src; link.target = "_blank"; link.rel = "noopener noreferrer nofollow"; }
    img.replaceWith(link);
  }
  for (const pre of fragment.querySelectorAll("pre")) decorateCode(pre);
  return fragment;
}

function decorateCode(pre) {
  const box = document.createElement("div");
  box.className = "code";
  const bar = document.createElement("div");
  bar.className = "code-bar";
  const code = pre.querySelector("code");
  const lang = code && /(?:^|\s)language-(\S+)/.exec(code.className);
  const name = document.createElement("span");
  name.textContent = lang ? lang[1] : "code";
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", "Copy code");
  bar.append(name, copy);
  pre.replaceWith(box);
  box.append(bar, pre);
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");  // plain http on a LAN address
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}


// Renders an answer as it streams without redoing what is settled: the text is split
// into top-level Markdown blocks; every block but the last (which more text may still
// change) is rendered once into `settled` and never touched again; only the last block
// is re-rendered, at most once per animation frame. `finish()` renders the whole answer
// once more (reference links defined late, loose lists).
export class StreamView {
  constructor(container) {
    this.container = container;
    this.settled = document.createElement("div");
    this.settled.className = "settled";
    this.live = document.createElement("div");
    this.live.className = "live";
    container.replaceChildren(this.settled, this.live);
    this.text = "";
    this.tail = "";
    this.frame = 0;
  }

  push(delta) {
    this.text += delta;
    this.tail += delta;
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  draw() {
    const tokens = md.lexer(this.tail);
    let last = tokens.length - 1;
    while (last > 0 && tokens[last].type === "space") last -= 1;
    if (last > 0) {
      const done = tokens.slice(0, last);
      const raw = done.map((t) => t.raw).join("");
      if (this.tail.startsWith(raw)) {
        done.links = tokens.links;
        const block = document.createElement("div");
        block.className = "block";
        block.appendChild(markdownFragment(done));
        this.settled.appendChild(block);
        this.tail = this.tail.slice(raw.length);
        this.live.replaceChildren(markdownFragment(tokens.slice(last)));
        return;
      }
    }
    this.live.replaceChildren(markdownFragment(this.tail));
  }

  finish() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.container.replaceChildren(markdownFragment(this.text));
  }
}
