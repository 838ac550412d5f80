// Document library: drag-and-drop upload (a queue that keeps to the upload limit, each
// file with its own progress and status), live statuses, filters.
import { api, csrf, el } from "./api.js";

const form = document.getElementById("upload-form");
const input = document.getElementById("id_files");
const dropzone = document.getElementById("dropzone");
const uploads = document.getElementById("upload-list");
const listBox = document.getElementById("doc-list");
const countLine = document.getElementById("library-count");
const filterText = document.getElementById("filter-text");
const filterStatus = document.getElementById("filter-status");
const me = Number(listBox.dataset.userId);
const staff = listBox.dataset.staff === "true";
const PROCESSING = new Set(["queued", "extracting", "chunking", "embedding"]);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const LABELS = { queued: "Queued", extracting: "Extracting text", chunking: "Splitting into passages", embedding: "Embedding", ready: "Ready", failed: "Failed" };

let documents = [];
let currentRows = [];
let pollTimer;
let list;

// --- Upload ---------------------------------------------------------------------
// Each file is sent on its own, one after the other, so each has its own progress, its
// own status and its own error, and one bad file refuses only itself. UPLOAD_RATE
// counts files: when the server says 429, the rest wait in this queue and are sent when
// its Retry-After has passed. Each line then follows its document to "Ready".
const queue = [];
let sending = false;

function uploadLine(item, text, kind = "") {
  item.state.textContent = text;
  item.state.className = `upload-state${kind ? ` ${kind}` : ""}`;
  item.row.dataset.state = kind || "active";
}

function enqueue(files) {
  const visibility = form.querySelector("input[name=visibility]:checked")?.value || "private";
  for (const file of files) {
    const bar = el("progress", { max: 100, value: 0, "aria-label": `Uploading ${file.name}` });
    const state = el("span", { class: "upload-state", text: "Waiting to be sent" });
    const row = el("li", { "data-state": "waiting" }, el("span", { class: "doc-name", text: file.name }), bar, state);
    uploads.append(row);
    queue.push({ file, visibility, bar, state, row });
  }
  pump();
}

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function pump() {
  if (sending) return;
  sending = true;
  try {
    while (queue.length) {
      const item = queue[0];
      uploadLine(item, "Sending…");
      const { status, data, retryAfter } = await send(item);
      if (status === 429 && retryAfter > 0) {
        // The limit: this file and those after it wait, then go on by themselves.
        item.bar.value = 0;
        const until = Date.now() + retryAfter * 1000;
        for (let left = until - Date.now(); left > 0; left = until - Date.now()) {
          uploadLine(item, `Waiting: the upload limit lets the next file go in ${Math.ceil(left / 1000)} s`, "waiting");
          for (const other of queue.slice(1)) uploadLine(other, "Waiting for the upload limit", "waiting");
          await pause(Math.min(1000, left));
        }
        continue;
      }
      queue.shift();
      if (status === 200 || status === 201) {
        const doc = data.results[0];
        item.bar.value = 100;
        item.bar.remove();
        item.row.dataset.documentId = doc.id;
        uploadLine(item, doc.created ? "Uploaded — processing" : "Already in your library");
        follow(item.row, doc);
        refresh();
      } else {
        item.bar.remove();
        const message = status === 0 ? "Not sent: no connection." : data?.error?.message || `Upload failed (${status}).`;
        uploadLine(item, message, "error");
        // Sending again helps only when the connection or the server failed, not the file.
        if (status !== 0 && status < 500) continue;
        const retry = el("button", { type: "button", "data-upload": "retry", text: "Try again", "aria-label": `Try ${item.file.name} again` });
        retry.addEventListener("click", () => {
          retry.remove();
          item.row.replaceChildren(item.row.firstChild, item.bar, item.state);
          item.bar.value = 0;
          queue.push(item);
          uploadLine(item, "Waiting to be sent");
          pump();
        });
        item.row.append(retry);
      }
    }
  } finally {
    sending = false;
  }
}

// One file in one request; resolves with the status (0: no connection) and the body.
function send({ file, visibility, bar }) {
  return new Promise((resolve) => {
    const body = new FormData();
    body.append("files", file);
    body.append("visibility", visibility);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/documents");
    xhr.setRequestHeader("X-CSRFToken", csrf());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.total) bar.value = Math.round((100 * event.loaded) / event.total);
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      resolve({ status: xhr.status, data, retryAfter: Number(xhr.getResponseHeader("Retry-After")) || 0 });
    });
    xhr.addEventListener("error", () => resolve({ status: 0, data: {}, retryAfter: 0 }));
    xhr.send(body);
  });
}

// An uploaded file's line follows its document: processing, then ready (or why not).
function follow(line, doc) {
  if (doc.status === "ready") {
    line.querySelector(".upload-state").textContent = `Ready — ${plural(doc.page_count, "page")} · ${plural(doc.chunk_count, "passage")}`;
    line.querySelector(".upload-state").className = "upload-state ready";
    line.dataset.state = "ready";
  } else if (doc.status === "failed") {
    line.querySelector(".upload-state").textContent = `Failed: ${doc.failure_reason}`;
    line.querySelector(".upload-state").className = "upload-state error";
    line.dataset.state = "failed";
  } else {
    line.querySelector(".upload-state").textContent = `Processing: ${LABELS[doc.status] || doc.status}…`;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!input.files.length) {
    input.focus();
    return;
  }
  enqueue([...input.files]);
  input.value = ""; // the files are in the queue; the visibility choice stays
});
for (const name of ["dragenter", "dragover"]) {
  dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  dropzone.addEventListener(name, () => dropzone.classList.remove("over"));
}
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  enqueue([...event.dataTransfer.files]);
});

// --- Library --------------------------------------------------------------------
function eta(seconds) {
  if (seconds == null) return "";
  return seconds < 90 ? `about ${Math.round(seconds)} s left` : `about ${Math.round(seconds / 60)} min left`;
}

// "20 of 40 passages · 3.2 per second · about 6 s left": what the worker got through,
// how fast, and the ETA, each once known.
function progressText(p) {
  const parts = [];
  if (p.rate_unit === "passages" && p.chunks_total) parts.push(`${p.chunks_embedded} of ${p.chunks_total} passages`);
  else if (p.rate_unit === "pages" && p.pages_total) parts.push(`${p.pages_done} of ${p.pages_total} pages`);
  if (p.rate_per_second != null) {
    const rate = p.rate_per_second;
    parts.push(`${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} per second`);
  }
  if (p.eta_seconds != null) parts.push(eta(p.eta_seconds));
  return parts.join(" · ");
}

function row(doc) {
  const status = el("span", { class: `status status-${doc.status}`, text: LABELS[doc.status] || doc.status });
  const name = doc.status === "ready"
    ? el("button", { type: "button", class: "doc-open", "data-action": "open", text: doc.name, title: `Read ${doc.name}` })
    : el("span", { text: doc.name });
  const shared = doc.visibility === "shared";
  const item = el("li", { class: "doc-row", "data-id": doc.id },
    el("span", { class: "doc-name" }, name,
      el("span", { class: "doc-visibility", text: shared ? "Everyone on this site" : "Only me" })),
    status);
  if (PROCESSING.has(doc.status)) {
    item.append(el("progress", { max: 100, value: Math.round(doc.progress.fraction * 100), "aria-label": `Progress of ${doc.name}` }),
      el("small", { class: "muted doc-progress", text: progressText(doc.progress) }));
  } else if (doc.status === "failed") {
    item.append(el("span", { class: "field-error", text: doc.failure_reason }));
  } else if (doc.status === "ready") {
    item.append(el("small", { class: "muted", text: `${plural(doc.page_count, "page")} · ${plural(doc.chunk_count, "passage")}` }));
  }
  const actions = el("span", { class: "doc-actions" });
  if (doc.status === "ready") {
    actions.append(el("button", { type: "button", "data-action": "search-in", "aria-label": `Search in ${doc.name}`, text: "Search in it" }));
  }
  if (doc.is_owner || staff) {
    actions.append(
      el("button", { type: "button", "data-action": "visibility", "aria-label": shared ? `Make ${doc.name} private` : `Share ${doc.name} with everyone on this site`, text: shared ? "Make private" : "Share" }),
      el("button", { type: "button", "data-action": "reprocess", "aria-label": `Process ${doc.name} again`, text: "Reprocess" }),
      el("button", { type: "button", class: "danger", "data-action": "delete", "aria-label": `Delete ${doc.name}`, text: "Delete" }));
  }
  if (actions.childElementCount) item.append(actions);
  return item;
}

function visible() {
  const text = filterText.value.trim().toLowerCase();
  const status = filterStatus.value;
  return documents.filter((d) => (!status || d.status === status) && (!text || d.name.toLowerCase().includes(text)));
}

const emptyBox = document.getElementById("library-empty");
const emptyText = document.getElementById("library-empty-text");

async function render() {
  const shown = visible();
  currentRows = shown;
  countLine.textContent = documents.length ? `${shown.length} of ${documents.length} documents` : "";
  // Empty states: nothing uploaded yet, or nothing matches the filters.
  const filtered = filterText.value.trim() || filterStatus.value;
  emptyBox.hidden = shown.length > 0;
  document.getElementById("filter-clear").hidden = !filtered;
  if (!shown.length) {
    emptyText.textContent = filtered
      ? `No documents match ${filterText.value.trim() ? `“${filterText.value.trim()}”` : "this filter"}${filterStatus.value ? ` with the status “${LABELS[filterStatus.value]}”` : ""}.`
      : "No documents yet. Upload a manual to get started.";
  }
  // Before the first await: the page's own "No documents yet" (rendered for browsers
  // without scripts) and emptyBox must not both show while vlist.js loads.
  listBox.hidden = !shown.length;
  if (!list) {
    const { createVirtualList } = await import("./vlist.js");
    listBox.replaceChildren();
    list = createVirtualList({ container: listBox, count: shown.length, estimateHeight: 56, overscan: 8, renderRow: (i) => row(currentRows[i]) });
  }
  list.setCount(shown.length);
  list.refresh();
}

document.getElementById("filter-clear").addEventListener("click", () => {
  filterText.value = "";
  filterStatus.value = "";
  render();
  filterText.focus();
});

async function refresh() {
  const all = [];
  let next = "/api/documents?page_size=100";
  try {
    while (next) {
      const page = await api(next);
      all.push(...page.results);
      next = page.next;
    }
  } catch (error) {
    countLine.textContent = error.message;
    return;
  }
  documents = all;
  for (const line of uploads.querySelectorAll("li[data-document-id]")) {
    const doc = documents.find((d) => String(d.id) === line.dataset.documentId);
    if (doc && line.dataset.state !== "ready") follow(line, doc);
  }
  await render();
  clearTimeout(pollTimer);
  if (documents.some((d) => PROCESSING.has(d.status))) pollTimer = setTimeout(refresh, 2000);
}

async function openDocument(doc) {
  const viewer = await import("./viewer.js");
  viewer.openCitation({ documentId: doc.id, page: 1, title: doc.name });
}

listBox.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("[data-id]").dataset.id;
  const doc = documents.find((d) => String(d.id) === id);
  const action = button.dataset.action;
  try {
    if (action === "open") {
      await openDocument(doc);
      return;
    }
    if (action === "search-in") {
      setScope(doc);
      searchInput.focus();
      return;
    }
    if (action === "delete") {
      if (!window.confirm(`Delete “${doc.name}” with its passages?`)) return;
      await api(`/api/documents/${id}`, { method: "DELETE" });
      countLine.textContent = `“${doc.name}” was deleted.`;
    } else if (action === "visibility") {
      const visibility = doc.visibility === "shared" ? "private" : "shared";
      await api(`/api/documents/${id}`, { method: "PATCH", body: { visibility } });
    } else {
      await api(`/api/documents/${id}/reprocess`, { method: "POST" });
    }
    await refresh();
    // The focus stays on the row's button (the row is drawn again).
    listBox.querySelector(`[data-id="${id}"] [data-action="${action}"]`)?.focus();
  } catch (error) {
    countLine.textContent = error.message;
  }
});

// --- Search: the passages of the library (or of one document) that match ---------------
const searchForm = document.getElementById("search-form");
const searchInput = document.getElementById("search-q");
const searchStatus = document.getElementById("search-status");
const searchResults = document.getElementById("search-results");
const scopeLine = document.getElementById("search-scope");
let scope = null; // a document, or null: the whole library

function setScope(doc) {
  scope = doc;
  scopeLine.hidden = !doc;
  document.getElementById("search-scope-name").textContent = doc ? doc.name : "";
  searchInput.placeholder = doc ? `Search in ${doc.name}` : "e.g. calibrate the chuck";
}
document.getElementById("search-scope-clear").addEventListener("click", () => { setScope(null); searchInput.focus(); });

// The API's snippets are escaped text with <mark> around matches: rebuild them from
// text nodes, keeping only the marks.
function snippetNodes(html) {
  const parsed = new DOMParser().parseFromString(html || "", "text/html").body;
  return [...parsed.childNodes].map((node) => (node.nodeName === "MARK"
    ? el("mark", { text: node.textContent }) : document.createTextNode(node.textContent)));
}

// The passage whole, between the text of its section just before and after it (a fact
// that spans two passages reads whole), behind a disclosure: plain text, never markup.
function sectionContext(hit) {
  const context = hit.context || { before: "", after: "" };
  if (!context.before && !context.after) return [];
  let text = hit.content || "";
  if (hit.section && text.startsWith(hit.section)) text = text.slice(hit.section.length).trimStart();
  const part = (value, cls) => (value ? [el("p", { class: cls, text: value })] : []);
  return [el("details", { class: "hit-context" },
    el("summary", { text: "Read it in its section" }),
    ...part(context.before, "hit-around"), ...part(text, "hit-passage"), ...part(context.after, "hit-around"))];
}

searchForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = searchInput.value.trim();
  if (!q) {
    searchStatus.textContent = "Type the words to find.";
    searchInput.focus();
    return;
  }
  // Full text: passages holding the words, each with its section's text around it.
  const params = new URLSearchParams({ q, k: "20", mode: "text", include: "content,context" });
  if (scope) params.set("documents", scope.id);
  searchStatus.textContent = "Searching…";
  searchResults.replaceChildren();
  try {
    const data = await api(`/api/search?${params}`);
    const where = scope ? ` in “${scope.name}”` : "";
    searchStatus.textContent = data.results.length
      ? `${data.results.length} passage${data.results.length === 1 ? "" : "s"} found${where}.`
      : `Nothing found for “${q}”${where}. Try other words, or check that the manual is ready.`;
    for (const hit of data.results) {
      const open = el("button", { type: "button", class: "doc-open", text: hit.document.name, title: "Open at this passage" });
      open.addEventListener("click", async () => {
        const viewer = await import("./viewer.js");
        viewer.openCitation({
          documentId: hit.document.id, page: hit.pages.first, chunkId: hit.chunk_id,
          quote: new DOMParser().parseFromString(hit.snippet || "", "text/html").body.textContent, title: hit.document.name,
        });
      });
      searchResults.append(el("li", {},
        el("div", { class: "hit-head" }, open, el("span", { class: "muted", text: hit.location || hit.pages.label || "" })),
        el("p", { class: "hit-snippet" }, ...snippetNodes(hit.snippet)),
        ...sectionContext(hit)));
    }
  } catch (error) {
    searchStatus.textContent = error.message;
  }
});

filterText.addEventListener("input", render);
filterStatus.addEventListener("change", render);
refresh();
