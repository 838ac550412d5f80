// Citation viewer: a modal <dialog> with the cited page and the passage highlighted.
// A document without pages (Markdown, text, DOCX) is shown a section at a time, as the
// HTML the server renders (documents/sections.py: raw HTML off, links inert, no
// images), with prev/next going through its sections.
// Loaded on demand with a dynamic import() of this module, which exports openCitation.
//   openCitation({ documentId, page, chunkId, quote, title })
// documentId and page are required (numbers or numeric strings); chunkId (the cited
// chunk, may be gone) and quote (the passage text, used when the chunk is gone) are
// optional; title is shown in the dialog's header. Document text is only ever put into
// the page with textContent / text nodes. Self-contained (no imports), so it can be
// loaded from any page.

const MIN_WIDTH = 400;
const MAX_WIDTH = 2000;
const MAX_QUOTE = 1500; // URL length: gunicorn refuses request lines over 4 KB
const CSS_URL = document.querySelector('meta[name="viewer-css"]')?.content
  || new URL("../css/viewer.css", import.meta.url).href;

let styles; // Promise: the stylesheet is added once
let ui; // the dialog and its parts, built once
let state = null; // { documentId, page, pageCount, chunkId, quote, title, isPdf, section, sectionCount, moved }
let opener = null;
let request = 0; // only the latest page request may update the dialog
let controller = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

async function getJSON(url, signal) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw Object.assign(new Error("network"), { status: undefined });
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw Object.assign(new Error(data?.error?.message || ""), { status: response.status });
  }
  return data;
}

function ensureStyles() {
  if (!styles) {
    styles = new Promise((resolve) => {
      const link = el("link", { rel: "stylesheet", href: CSS_URL, "data-viewer-css": "" });
      link.addEventListener("load", resolve, { once: true });
      link.addEventListener("error", resolve, { once: true });
      document.head.append(link);
      setTimeout(resolve, 1500); // never wait long for looks
    });
  }
  return styles;
}

function build() {
  const title = el("h2", { class: "viewer-title", id: "viewer-title" });
  const pageNo = el("p", { class: "viewer-pageno", "aria-live": "polite" });
  const prev = el("button", { type: "button", "data-nav": "prev", "aria-label": "Previous page", title: "Previous page (←)" }, "‹");
  const next = el("button", { type: "button", "data-nav": "next", "aria-label": "Next page", title: "Next page (→)" }, "›");
  const close = el("button", { type: "button", "data-close": "", "aria-label": "Close", title: "Close (Esc)" }, "✕");
  const status = el("p", { class: "viewer-status", role: "status" });
  const content = el("div", { class: "viewer-content" });
  const body = el("div", { class: "viewer-body", tabindex: "0", role: "region", "aria-label": "Cited page" }, status, content);
  const dialog = el("dialog", { class: "viewer", "aria-labelledby": "viewer-title" },
    el("div", { class: "viewer-bar" }, title, pageNo, el("div", { class: "viewer-nav" }, prev, next, close)),
    body);

  prev.addEventListener("click", () => go(-1));
  next.addEventListener("click", () => go(1));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); }); // backdrop
  dialog.addEventListener("keydown", onKeydown);
  dialog.addEventListener("close", onClose);
  document.body.append(dialog);
  return { dialog, title, pageNo, prev, next, close, status, content, body };
}

function onKeydown(event) {
  if (event.key === "Tab") return trapFocus(event);
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === "ArrowLeft" && !ui.prev.disabled && !ui.prev.hidden) { event.preventDefault(); go(-1); }
  else if (event.key === "ArrowRight" && !ui.next.disabled && !ui.next.hidden) { event.preventDefault(); go(1); }
  // Escape: the dialog's own "cancel" closes it.
}

function trapFocus(event) {
  const focusable = [...ui.dialog.querySelectorAll("button, [href], [tabindex]:not([tabindex='-1'])")]
    .filter((node) => !node.disabled && !node.hidden && node.getClientRects().length);
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  const inside = ui.dialog.contains(document.activeElement);
  if (event.shiftKey && (document.activeElement === first || !inside)) { event.preventDefault(); last.focus(); }
  else if (!event.shiftKey && (document.activeElement === last || !inside)) { event.preventDefault(); first.focus(); }
}

function onClose() {
  controller?.abort();
  request += 1;
  ui.content.replaceChildren();
  state = null;
  const back = opener;
  opener = null;
  if (back?.isConnected) back.focus();
}

function go(delta) {
  if (!state) return;
  state.moved = true;
  if (state.sectionCount) {
    const section = state.section + delta;
    if (section >= 1 && section <= state.sectionCount) load(state.page, section);
    return;
  }
  const page = state.page + delta;
  if (page < 1 || (state.pageCount && page > state.pageCount)) return;
  load(page);
}

function showStatus(message, { error = false } = {}) {
  ui.status.textContent = message;
  ui.status.classList.toggle("error", error);
  ui.status.hidden = false;
  ui.content.hidden = true;
  ui.body.setAttribute("aria-busy", String(!error && message !== ""));
}

function showContent(children) {
  ui.status.hidden = true;
  ui.status.textContent = "";
  ui.body.removeAttribute("aria-busy");
  ui.content.replaceChildren(...children);
  ui.content.hidden = false;
}

function updateBar() {
  const { page, pageCount, isPdf, section, sectionCount } = state;
  if (sectionCount) {
    ui.pageNo.textContent = `Section ${section} of ${sectionCount}`;
    ui.prev.hidden = ui.next.hidden = sectionCount < 2;
    ui.prev.disabled = section <= 1;
    ui.next.disabled = section >= sectionCount;
    setNav("section");
    return;
  }
  ui.pageNo.textContent = (isPdf || pageCount > 1) && pageCount ? `Page ${page} of ${pageCount}` : "";
  const paged = pageCount > 1;
  ui.prev.hidden = ui.next.hidden = !paged;
  ui.prev.disabled = page <= 1;
  ui.next.disabled = !!pageCount && page >= pageCount;
  setNav("page");
}

function setNav(unit) {
  ui.prev.setAttribute("aria-label", `Previous ${unit}`);
  ui.prev.title = `Previous ${unit} (←)`;
  ui.next.setAttribute("aria-label", `Next ${unit}`);
  ui.next.title = `Next ${unit} (→)`;
}

function errorText(error) {
  if (error.name === "AbortError") return null;
  switch (error.status) {
    case 404:
      return /no page/i.test(error.message) ? error.message
        : "You don't have access to this document, or it no longer exists.";
    case 409:
      return error.message || "The document is still being processed. Try again when it is ready.";
    case 401:
    case 403:
      return "Your session has ended. Sign in again to see this page.";
    case 422:
    case 429:
    case 503:
      return error.message;
    case undefined:
      return "The page could not be loaded. Check your connection and try again.";
    default:
      return `The page could not be loaded (${error.status}).`;
  }
}

async function load(page, section = null) {
  const ticket = ++request;
  controller?.abort();
  controller = new AbortController();
  state.page = page;
  if (section) state.section = section;
  updateBar();
  // Until the first answer it is not known whether the document has pages or sections.
  showStatus(section ? `Loading section ${section}…` : state.pageCount ? `Loading page ${page}…` : "Loading…");
  const params = new URLSearchParams();
  if (state.chunkId) params.set("chunk", state.chunkId);
  else if (state.quote) params.set("quote", state.quote);
  if (section) params.set("section", section);
  const query = params.toString();
  let data;
  try {
    data = await getJSON(`/api/documents/${encodeURIComponent(state.documentId)}/pages/${page}${query ? `?${query}` : ""}`,
      controller.signal);
  } catch (error) {
    if (ticket !== request) return;
    const message = errorText(error);
    if (message) showStatus(message, { error: true });
    return;
  }
  if (ticket !== request || !state) return;
  state.pageCount = data.page_count;
  state.isPdf = !!data.image_url;
  state.section = data.section_number || 0;
  state.sectionCount = data.section_count || 0;
  if (!state.title) ui.title.textContent = data.document.name;
  updateBar();
  if (state.isPdf) renderPdf(data);
  else renderText(data);
}

function widthFor(cssPixels) {
  return Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, Math.ceil(cssPixels / 100) * 100));
}

function renderPdf(data) {
  const { page, page_count: count } = data;
  const sheet = el("div", { class: "viewer-sheet" });
  if (data.width > 0 && data.height > 0) sheet.style.aspectRatio = `${data.width} / ${data.height}`;
  // .viewer-sheet: 100% up to 52rem; 48rem on a narrow screen (viewer.css)
  const narrow = window.matchMedia("(max-width: 600px)").matches;
  const shown = narrow ? 768 : Math.min(ui.body.clientWidth || 800, 832);
  const w1 = widthFor(shown);
  const w2 = widthFor(shown * 2);
  const src = (w) => `${data.image_url}?width=${w}`;
  const img = el("img", {
    src: src(w1), srcset: `${src(w1)} 1x, ${src(w2)} 2x`, loading: "lazy", decoding: "async",
    alt: `Page ${page} of ${count} of ${data.document.name}`,
  });
  img.addEventListener("error", () => {
    sheet.replaceChildren(el("p", { class: "viewer-status error", text: "The image of this page could not be loaded." }));
    sheet.style.aspectRatio = "auto";
  }, { once: true });
  sheet.append(img);
  for (const box of data.highlights) {
    const mark = el("div", { class: "viewer-hl" });
    mark.style.left = `${box.x * 100}%`;
    mark.style.top = `${box.y * 100}%`;
    mark.style.width = `${box.w * 100}%`;
    mark.style.height = `${box.h * 100}%`;
    sheet.append(mark);
  }
  const children = [];
  const note = noteFor(data);
  if (note) children.push(note);
  children.push(sheet);
  if (data.passage_text) {
    children.push(el("p", { class: "visually-hidden", text: `Highlighted passage: ${data.passage_text}` }));
  }
  showContent(children);
  reveal(sheet.querySelector(".viewer-hl"));
}

function renderText(data) {
  const text = data.text || "";
  let prose = el("div", { class: "viewer-prose" });
  let mark = null;
  if (typeof data.html === "string") {
    // Rendered by the server from the document (documents/sections.py): raw HTML off,
    // every character escaped, links inert, no images. The passage is in <mark>s.
    const kind = { "text/plain": " is-plain", "text/markdown": "" }[data.document.mime_type] ?? " is-docx";
    prose = el("div", { class: `viewer-doc${kind}` });
    prose.innerHTML = data.html;
    mark = prose.querySelector("mark");
  } else if (data.passage && data.passage.end > data.passage.start) {
    const { start, end } = data.passage;
    mark = el("mark", { text: text.slice(start, end) });
    prose.append(document.createTextNode(text.slice(0, start)), mark, document.createTextNode(text.slice(end)));
  } else {
    prose.textContent = text;
  }
  const box = el("div", { class: "viewer-text" });
  if (data.section) box.append(el("p", { class: "viewer-section", text: data.section }));
  if (data.truncated_before) box.append(el("p", { class: "viewer-more", text: "…" }));
  box.append(prose);
  if (data.truncated_after) box.append(el("p", { class: "viewer-more", text: "…" }));
  const note = noteFor(data);
  showContent(note ? [note, box] : [box]);
  reveal(mark);
}

function noteFor(data) {
  if (data.match || !(state.chunkId || state.quote)) return null;
  if (data.page !== state.firstPage) return null; // other pages of a passage: nothing to say
  if (state.moved) return null; // another section, asked for
  return el("p", { class: "viewer-note", role: "note", text: "The cited passage could not be located exactly on this page; the document may have changed since the answer." });
}

function reveal(node) {
  // Only the viewer's body scrolls to the passage. scrollIntoView() would scroll every
  // scrollable ancestor too: a passage low on its page, which the body cannot centre,
  // pushed the dialog itself (and its header) up out of the viewport (issue 22 item 5).
  const body = ui.body;
  body.scrollTop = 0;
  body.scrollLeft = 0;
  if (!node) return;
  const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  requestAnimationFrame(() => {
    const area = body.getBoundingClientRect();
    const box = node.getBoundingClientRect();
    const top = body.scrollTop + box.top - area.top - Math.max(0, (body.clientHeight - box.height) / 2);
    const left = body.scrollLeft + box.left - area.left
      - (box.width < body.clientWidth ? (body.clientWidth - box.width) / 2 : 16);
    body.scrollTo({ top: Math.max(0, top), left: Math.max(0, left), behavior: smooth ? "smooth" : "auto" });
  });
}

function trimQuote(quote) {
  const text = (quote || "").replace(/…$/, "").trim();
  if (text.length <= MAX_QUOTE) return text;
  const cut = text.lastIndexOf(" ", MAX_QUOTE);
  return text.slice(0, cut > MAX_QUOTE / 2 ? cut : MAX_QUOTE);
}

export async function openCitation({ documentId, page = 1, chunkId = null, quote = "", title = "" } = {}) {
  await ensureStyles();
  ui ||= build();
  if (!ui.dialog.open) opener = document.activeElement;
  const first = Math.max(1, Number.parseInt(page, 10) || 1);
  state = {
    documentId: documentId == null ? "" : String(documentId).trim(),
    page: first, firstPage: first, pageCount: 0, isPdf: false, section: 0, sectionCount: 0, moved: false,
    chunkId: chunkId ? String(chunkId) : "", quote: trimQuote(quote), title: title || "",
  };
  ui.title.textContent = state.title || "Source";
  ui.content.replaceChildren();
  if (!ui.dialog.open) ui.dialog.showModal();
  ui.body.focus({ preventScroll: true });
  if (!/^\d+$/.test(state.documentId)) {
    state.page = first;
    updateBar();
    showStatus("This document has been deleted, so its page cannot be shown.", { error: true });
    return;
  }
  await load(first);
}

export function closeViewer() {
  if (ui?.dialog.open) ui.dialog.close();
}
