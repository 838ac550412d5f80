// Document library: drag-and-drop upload with per-file progress, live statuses, filters.
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
const LABELS = { queued: "Queued", extracting: "Extracting text", chunking: "Splitting into passages", embedding: "Embedding", ready: "Ready", failed: "Failed" };

let documents = [];
let currentRows = [];
let pollTimer;
let list;

// --- Upload ---------------------------------------------------------------------
// One request for all files (the upload rate limit counts requests); each file's
// bar follows the bytes of its own part of the multipart body.
function upload(files) {
  if (!files.length) return;
  const rows = files.map((file) => {
    const bar = el("progress", { max: 100, value: 0, "aria-label": `Uploading ${file.name}` });
    const note = el("span", { class: "muted", text: `${(file.size / 1048576).toFixed(1)} MB` });
    const row = el("li", {}, el("span", { class: "doc-name", text: file.name }), bar, note);
    uploads.append(row);
    return { file, bar, note, row };
  });
  const body = new FormData();
  for (const file of files) body.append("files", file);
  body.append("visibility", document.getElementById("id_visibility").value);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/documents");
  xhr.setRequestHeader("X-CSRFToken", csrf());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (event) => {
    const total = event.total || files.reduce((n, f) => n + f.size, 0);
    const overhead = Math.max(0, total - files.reduce((n, f) => n + f.size, 0));
    let offset = 0;
    for (const { file, bar } of rows) {
      const share = overhead / rows.length;
      const done = (event.loaded - offset - share) / file.size;
      bar.value = Math.round(100 * Math.min(1, Math.max(0, done)));
      offset += file.size + share;
    }
  });
  xhr.addEventListener("load", () => {
    let data = {};
    try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 200 || xhr.status === 201) {
      data.results.forEach((doc, i) => {
        rows[i].bar.value = 100;
        rows[i].note.textContent = doc.created ? "Uploaded — processing" : "Already in your library";
      });
      refresh();
    } else {
      const message = data?.error?.message || `Upload failed (${xhr.status}).`;
      for (const { bar, note } of rows) { bar.remove(); note.textContent = message; note.className = "field-error"; }
    }
  });
  xhr.addEventListener("error", () => {
    for (const { note } of rows) { note.textContent = "Upload failed: no connection."; note.className = "field-error"; }
  });
  xhr.send(body);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  upload([...input.files]);
  form.reset();
});
for (const name of ["dragenter", "dragover"]) {
  dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  dropzone.addEventListener(name, () => dropzone.classList.remove("over"));
}
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  upload([...event.dataTransfer.files]);
});

// --- Library --------------------------------------------------------------------
function eta(seconds) {
  if (seconds == null) return "";
  return seconds < 90 ? `about ${Math.round(seconds)} s left` : `about ${Math.round(seconds / 60)} min left`;
}

function row(doc) {
  const status = el("span", { class: `status status-${doc.status}`, text: LABELS[doc.status] || doc.status });
  const item = el("li", { class: "doc-row", "data-id": doc.id },
    el("span", { class: "doc-name" }, doc.name, doc.visibility === "shared" ? el("small", { class: "muted", text: " (shared)" }) : null),
    status);
  if (PROCESSING.has(doc.status)) {
    item.append(el("progress", { max: 100, value: Math.round(doc.progress.fraction * 100), "aria-label": `Progress of ${doc.name}` }),
      el("small", { class: "muted", text: eta(doc.progress.eta_seconds) }));
  } else if (doc.status === "failed") {
    item.append(el("span", { class: "field-error", text: doc.failure_reason }));
  } else if (doc.status === "ready") {
    item.append(el("small", { class: "muted", text: `${doc.page_count} pages · ${doc.chunk_count} passages` }));
  }
  if (doc.is_owner || staff) {
    item.append(el("span", { class: "doc-actions" },
      el("button", { type: "button", "data-action": "reprocess", "aria-label": `Process ${doc.name} again`, text: "Reprocess" }),
      el("button", { type: "button", class: "danger", "data-action": "delete", "aria-label": `Delete ${doc.name}`, text: "Delete" })));
  }
  return item;
}

function visible() {
  const text = filterText.value.trim().toLowerCase();
  const status = filterStatus.value;
  return documents.filter((d) => (!status || d.status === status) && (!text || d.name.toLowerCase().includes(text)));
}

async function render() {
  const shown = visible();
  currentRows = shown;
  countLine.textContent = `${shown.length} of ${documents.length} documents`;
  if (!list) {
    const { createVirtualList } = await import("./vlist.js");
    listBox.replaceChildren();
    list = createVirtualList({ container: listBox, count: shown.length, estimateHeight: 56, overscan: 8, renderRow: (i) => row(currentRows[i]) });
  }
  list.setCount(shown.length);
  list.refresh();
}

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
  await render();
  clearTimeout(pollTimer);
  if (documents.some((d) => PROCESSING.has(d.status))) pollTimer = setTimeout(refresh, 2000);
}

listBox.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("[data-id]").dataset.id;
  const doc = documents.find((d) => String(d.id) === id);
  try {
    if (button.dataset.action === "delete") {
      if (!window.confirm(`Delete “${doc.name}” with its passages?`)) return;
      await api(`/api/documents/${id}`, { method: "DELETE" });
    } else {
      await api(`/api/documents/${id}/reprocess`, { method: "POST" });
    }
    await refresh();
  } catch (error) {
    countLine.textContent = error.message;
  }
});
filterText.addEventListener("input", render);
filterStatus.addEventListener("change", render);
refresh();
