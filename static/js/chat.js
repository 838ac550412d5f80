// The chat page: ask, stream the answer, citations, and chat/message actions.
import { api, el, followEvents, streamEvents } from "./api.js";
import { createVirtualList } from "./vlist.js";

// The title keeps one line on a phone (CSS ellipsis); its tooltip holds the whole of it.
function setTitle(title) {
  const heading = document.getElementById("chat-title");
  heading.textContent = title;
  heading.title = title;
}

const app = document.querySelector(".chat-app");
const conversation = document.getElementById("conversation");
const form = document.getElementById("composer");
const question = document.getElementById("question");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const statusLine = document.getElementById("composer-status");
let chatId = app?.dataset.chatId || "";
let busy = false;

const setStatus = (text) => { if (statusLine) statusLine.textContent = text; };

// The conversation is a virtual list: a long chat keeps only a window of messages in
// the DOM. Each message sits in a row wrapper; everything goes through `thread`.
const thread = (() => {
  if (!conversation) return null;
  const wrap = (node) => el("div", { class: "msg-row" }, node);
  const rows = [...conversation.children].map(wrap);
  conversation.replaceChildren();
  const list = createVirtualList({
    container: conversation, count: rows.length, estimateHeight: 140, overscan: 6, renderRow: (i) => rows[i],
  });
  const atEnd = () => conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 120;
  const toEnd = () => { if (rows.length) list.scrollToIndex(rows.length - 1, { align: "end" }); };
  toEnd();
  return {
    append(node) { rows.push(wrap(node)); list.setCount(rows.length); toEnd(); },
    remove(node) {
      const i = rows.findIndex((row) => row.firstElementChild === node);
      if (i < 0) return;
      rows.splice(i, 1);
      list.setCount(rows.length);
      list.refresh();
    },
    removeWhere(test) { for (const node of this.all().filter(test)) this.remove(node); },
    all: () => rows.map((row) => row.firstElementChild),
    follow() { if (atEnd()) toEnd(); },
  };
})();

// The sources an answer shows are the passages it cites, numbered as its [n] markers:
// the same list the page shows after a reload (only cited passages are saved).
function sourcesList(messageId, passages, cited) {
  const shown = passages.filter((p) => cited.has(Number(p.number)));
  if (!shown.length) return null;
  const list = el("ol");
  for (const p of shown) {
    list.append(el("li", {
      value: p.number, id: `src-${messageId}-${p.number}`, "data-number": p.number, "data-document-id": p.document_id ?? "",
      "data-chunk-id": p.chunk_id ?? "", "data-page": p.first_page ?? "",
    }, el("span", { class: "src-doc", text: p.document }), p.location ? ", " : "",
    el("span", { class: "src-pages", text: p.location ?? "" }),
    el("blockquote", { class: "src-quote", text: plainSnippet(p.snippet) })));
  }
  return el("details", { class: "sources" }, el("summary", { text: `Sources (${shown.length})` }), list);
}

// Search snippets come as escaped HTML with <mark>: read them as text for quoting.
function plainSnippet(html) {
  const doc = new DOMParser().parseFromString(html || "", "text/html");
  return doc.body.textContent || "";
}

function tools(messageId, last) {
  const box = el("div", { class: "msg-tools" },
    el("button", { type: "button", "data-action": "copy", text: "Copy" }),
    el("button", { type: "button", "data-action": "vote", "data-value": "up", text: "Helpful" }),
    el("button", { type: "button", "data-action": "vote", "data-value": "down", text: "Not helpful" }));
  if (last) box.append(el("button", { type: "button", "data-action": "regenerate", text: "Regenerate" }));
  return box;
}

function clearRegenerate() {
  for (const node of thread.all()) node.querySelectorAll('[data-action="regenerate"]').forEach((b) => b.remove());
}

// An assistant bubble that renders an answer's events (streamed, followed or resumed).
function answerBubble() {
  const answer = el("div", { class: "answer streaming" });
  const article = el("article", { class: "msg assistant" }, answer);
  const state = { article, finished: false, lastId: null, passages: [] };
  state.onEvent = (name, data, id) => {
    if (id) state.lastId = id;
    if (name === "citations") {
      state.passages = data.passages;
    } else if (name === "token") {
      answer.textContent += data.text;
      thread.follow();
    } else if (name === "done" || name === "error") {
      state.finished = true;
      // The page may already show this answer (it was saved as the page loaded).
      const shown = data.message_id && thread.all().find((node) => node !== article && node.dataset.messageId === String(data.message_id));
      if (shown) { thread.remove(article); return; }
      if (data.message_id) article.dataset.messageId = data.message_id;
      if (name === "done") {
        answer.innerHTML = data.html; // sanitized by the server (raw HTML disabled)
        if (data.status === "partial") article.classList.add("partial");
      } else {
        article.classList.add(answer.textContent ? "partial" : "error");
        article.append(el("p", { class: "msg-error", text: data.message }));
      }
      answer.classList.remove("streaming");
      const cited = new Set([...answer.querySelectorAll(".cite")].map((chip) => Number(chip.dataset.cite)));
      const sources = sourcesList(data.message_id, state.passages, cited);
      if (sources) article.append(sources);
      if (data.message_id) article.append(tools(data.message_id, true));
      thread.follow();
    }
  };
  return state;
}

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// The answer goes on in the worker whatever happens to this connection: read it again
// from the last event seen until it ends (a few tries, a growing pause between them).
async function followAnswer(path, bubble) {
  for (let tries = 0; !bubble.finished && tries < 6; tries++) {
    try {
      await followEvents(path, bubble.lastId, bubble.onEvent);
    } catch (error) {
      if (error.status === 404) return;
      await pause(500 * (tries + 1));
    }
  }
}

function setBusy(on) {
  busy = on;
  conversation.setAttribute("aria-busy", String(on));
  sendButton.disabled = on;
  stopButton.hidden = !on;
}

async function ask(text, { path, body, fromQueue = false } = {}) {
  if (busy) return;
  thread.removeWhere((node) => node.classList.contains("empty-chat"));
  clearRegenerate();
  const asked = path ? null : el("article", { class: "msg user" }, el("p", { text }));
  if (asked) thread.append(asked);
  const bubble = answerBubble();
  thread.append(bubble.article);
  setBusy(true);
  setStatus("Answering…");
  let answerPath = null;
  const target = path || (chatId ? `/api/chats/${chatId}/messages` : "/api/chats");
  const onEvent = (name, data, id) => {
    if (name === "chat") {
      chatId = data.id;
      app.dataset.chatId = chatId;
      history.replaceState(null, "", `/c/${chatId}/`);
      setTitle(data.title);
      addToSidebar(data);
    } else {
      bubble.onEvent(name, data, id);
    }
  };
  try {
    try {
      await streamEvents(target, body || { question: text }, onEvent, undefined, (response) => {
        answerPath = response.headers.get("Content-Location");
      });
    } catch (error) {
      if (!answerPath) throw error; // nothing was started
    }
    if (!bubble.finished && answerPath) await followAnswer(answerPath, bubble);
    setStatus(bubble.finished ? "" : "The answer was cut off. Try again.");
  } catch (error) {
    // Nothing was answered: take the bubbles back (the text is queued or put back).
    thread.remove(bubble.article);
    if (asked) thread.remove(asked);
    const offline = !navigator.onLine || error instanceof TypeError;
    if (fromQueue) throw error; // stays queued
    if (offline && !path) {
      await queueOffline(text);
    } else {
      setStatus(error.message);
      if (!path) question.value = text;
    }
  } finally {
    setBusy(false);
  }
}

// A reload (or another tab) while an answer is being written: show it from the start
// and follow it to the end.
async function resumeRunningAnswer(answerId) {
  if (busy || !thread) return;
  const bubble = answerBubble();
  bubble.article.dataset.answerId = answerId;
  thread.append(bubble.article);
  setBusy(true);
  setStatus("Answering…");
  try {
    await followAnswer(`/api/answers/${answerId}/events`, bubble);
    if (!bubble.finished) thread.remove(bubble.article);
    setStatus("");
  } finally {
    setBusy(false);
  }
}

async function queueOffline(text) {
  try {
    const queue = await import("./offline-queue.js");
    await queue.queueQuestion(chatId, text);
    thread.append(el("article", { class: "msg user queued-question" },
      el("p", { text }), el("p", { class: "queued", text: queue.QUEUED_TEXT })));
    setStatus("You are offline. Your question is queued.");
  } catch {
    setStatus("You are offline. Try again when the connection is back.");
    question.value = text;
  }
}

// Sidebar: all of my chats in a virtual list (thousands stay smooth); the server
// rendered the newest ones so the page works before this runs.
const sidebar = document.getElementById("chat-list");
let sideChats = [];
let sideList;

function chatLink(chat) {
  return el("a", { href: `/c/${chat.id}/`, "aria-current": chat.id === chatId ? "page" : null, text: chat.title });
}

async function loadSidebar(q = "") {
  if (!sidebar) return;
  const all = [];
  let next = `/api/chats?page_size=100${q ? `&q=${encodeURIComponent(q)}` : ""}`;
  while (next) {
    const page = await api(next);
    all.push(...page.results);
    next = page.next;
  }
  sideChats = all;
  if (!sideList) {
    const { createVirtualList } = await import("./vlist.js");
    sidebar.replaceChildren();
    sideList = createVirtualList({
      container: sidebar, count: 0, estimateHeight: 40, overscan: 10, renderRow: (i) => chatLink(sideChats[i]),
    });
  }
  sideList.setCount(sideChats.length);
  sideList.refresh();
  sidebar.dataset.empty = sideChats.length ? "false" : "true";
}

function addToSidebar(chat) {
  sideChats.unshift({ id: chat.id, title: chat.title });
  if (sideList) {
    sideList.setCount(sideChats.length);
    sideList.refresh();
  }
}

form?.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = question.value.trim();
  if (!text) {
    setStatus("Type a question first.");
    question.focus();
    return;
  }
  question.value = "";
  ask(text);
});

question?.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton?.addEventListener("click", async () => {
  stopButton.disabled = true;
  try { await api(`/api/chats/${chatId}/stop`, { method: "POST" }); } catch (e) { setStatus(e.message); }
  stopButton.disabled = false;
});

// Message tools and citation chips (event delegation: works for streamed messages too).
conversation?.addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  const article = button.closest(".msg");
  const messageId = article?.dataset.messageId;
  if (button.classList.contains("cite")) return showCitation(button, article);
  const action = button.dataset.action;
  try {
    if (action === "copy") {
      await navigator.clipboard.writeText(article.querySelector(".answer").innerText);
      setStatus("Answer copied.");
    } else if (action === "vote") {
      const pressed = button.getAttribute("aria-pressed") === "true";
      if (pressed) await api(`/api/messages/${messageId}/vote`, { method: "DELETE" });
      else await api(`/api/messages/${messageId}/vote`, { method: "PUT", body: { value: button.dataset.value } });
      article.querySelectorAll('[data-action="vote"]').forEach((b) => b.setAttribute("aria-pressed", "false"));
      button.setAttribute("aria-pressed", String(!pressed));
    } else if (action === "regenerate") {
      thread.remove(article);
      await ask("", { path: `/api/chats/${chatId}/regenerate`, body: {} });
    }
  } catch (error) {
    setStatus(error.message);
  }
});

// The popover is shown in the top layer (the popover attribute): the rows of the
// conversation are positioned, and a later message would otherwise cover it.
let popover;
function closePopover() {
  if (popover?.isConnected) {
    if (popover.matches(":popover-open")) popover.hidePopover();
    popover.remove();
  }
  popover = null;
}

function placePopover(chip) {
  const box = chip.getBoundingClientRect();
  const width = popover.offsetWidth;
  const height = popover.offsetHeight;
  const left = Math.max(8, Math.min(box.left, window.innerWidth - width - 8));
  const below = box.bottom + 6;
  const top = below + height > window.innerHeight - 8 && box.top - height - 6 > 8 ? box.top - height - 6 : below;
  popover.style.left = `${left}px`;
  popover.style.top = `${Math.max(8, Math.min(top, window.innerHeight - height - 8))}px`;
}

function showCitation(chip, article) {
  const number = chip.dataset.cite;
  const source = article.querySelector(`.sources li[data-number="${number}"]`);
  closePopover();
  if (!source) return;
  const close = el("button", { type: "button", class: "link", "data-close": "", text: "Close" });
  let first = close;
  if (source.dataset.private === "true") {
    // A document the reader cannot open, or one deleted since: no name, no page, no text.
    const removed = source.dataset.removed === "true";
    popover = el("div", { class: "cite-popover", role: "dialog", popover: "auto", "aria-label": `Source ${number}` },
      el("p", { class: "src-title" }, el("strong", { text: `[${number}] ` }), removed ? "Removed document" : "Private document"),
      el("p", { class: "muted", text: removed
        ? "The cited document was deleted, so its text is no longer shown."
        : "This source is a document you cannot open, so its text is not shown." }),
      close);
  } else {
    const section = source.querySelector(".src-pages")?.textContent.startsWith("§");
    const open = el("button", { type: "button", class: "primary", text: section ? "Open section" : "Open page" });
    popover = el("div", { class: "cite-popover", role: "dialog", popover: "auto", "aria-label": `Source ${number}` },
      el("p", { class: "src-title" }, el("strong", { text: `[${number}] ` }), source.querySelector(".src-doc").cloneNode(true),
        ...(source.querySelector(".src-pages")?.textContent ? [", ", source.querySelector(".src-pages").cloneNode(true)] : [])),
      el("blockquote", { text: source.querySelector(".src-quote").textContent }), open, close);
    first = open;
    open.addEventListener("click", async () => {
      const viewer = await import("./viewer.js");
      closePopover();
      viewer.openCitation({
        documentId: source.dataset.documentId, page: Number(source.dataset.page),
        chunkId: source.dataset.chunkId || null, quote: source.querySelector(".src-quote").textContent,
        title: source.querySelector(".src-doc").textContent,
      });
    });
  }
  const shown = popover;
  chip.after(shown);
  shown.showPopover();
  placePopover(chip);
  first.focus();
  // Light dismiss (a click outside, Escape) hides it: take it out of the page then.
  shown.addEventListener("toggle", (event) => {
    if (event.newState === "closed") {
      shown.remove();
      if (popover === shown) popover = null;
    }
  });
  close.addEventListener("click", () => { closePopover(); chip.focus(); });
  shown.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); closePopover(); chip.focus(); } });
}
conversation?.addEventListener("scroll", () => { if (popover) closePopover(); }, { passive: true });
window.addEventListener("resize", () => { if (popover) closePopover(); });

// Chat header: rename, share, delete.
document.querySelector(".chat-actions")?.addEventListener("click", async (event) => {
  const action = event.target.closest("button")?.dataset.action;
  try {
    if (action === "rename") {
      startRename();
    } else if (action === "share") {
      openShareDialog(event.target.closest("button"));
    } else if (action === "delete") {
      if (!window.confirm("Delete this chat and all its messages?")) return;
      await api(`/api/chats/${chatId}`, { method: "DELETE" });
      // Replace, not add: Back must not lead to the deleted chat, nor a reload to a 404.
      location.replace("/");
    }
  } catch (error) {
    setStatus(error.message);
  }
});

// Rename in place: the title becomes a field (Enter saves, Escape cancels).
const renameForm = document.getElementById("rename-form");
const renameInput = document.getElementById("rename-title");
const renameError = document.getElementById("rename-error");
function showRename(on) {
  renameForm.hidden = !on;
  document.getElementById("chat-title").hidden = on;
  document.querySelector(".chat-actions").hidden = on;
  renameError.textContent = "";
}
function startRename() {
  renameInput.value = document.getElementById("chat-title").textContent;
  showRename(true);
  renameInput.focus();
  renameInput.select();
}
renameForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = renameInput.value.trim();
  if (!title) {
    renameError.textContent = "A chat needs a title.";
    renameInput.focus();
    return;
  }
  try {
    const chat = await api(`/api/chats/${chatId}`, { method: "PATCH", body: { title } });
    setTitle(chat.title);
    document.title = `${chat.title} · ${document.title.split(" · ").pop()}`;
    const entry = sideChats.find((c) => String(c.id) === String(chatId));
    if (entry) entry.title = chat.title;
    sideList?.refresh();
    showRename(false);
    document.querySelector('[data-action="rename"]').focus();
  } catch (error) {
    renameError.textContent = error.message; // the field keeps what was typed
  }
});
renameForm?.addEventListener("click", (event) => {
  if (event.target.closest("[data-rename=cancel]")) {
    showRename(false);
    document.querySelector('[data-action="rename"]').focus();
  }
});
renameInput?.addEventListener("keydown", (event) => {
  if (event.key === "Escape") { event.preventDefault(); showRename(false); }
});

// The share dialog says what a link shares before anything is shared.
function openShareDialog(button) {
  const dialog = document.getElementById("share-dialog");
  const shared = button.getAttribute("aria-pressed") === "true";
  const render = (isShared) => {
    dialog.querySelector("[data-state=private]").hidden = isShared;
    dialog.querySelector("[data-state=public]").hidden = !isShared;
    dialog.querySelector("#share-link").value = location.href;
  };
  render(shared);
  dialog.onclick = async (event) => {
    const choice = event.target.closest("button")?.dataset.share;
    if (!choice) return;
    if (choice === "close") return dialog.close();
    try {
      const visibility = choice === "on" ? "public" : "private";
      await api(`/api/chats/${chatId}`, { method: "PATCH", body: { visibility } });
      const isShared = visibility === "public";
      button.setAttribute("aria-pressed", String(isShared));
      // On a phone the detail is hidden (CSS) and the button reads "Shared".
      button.replaceChildren(
        ...(isShared ? ["Shared", el("span", { class: "share-detail" }, ": anyone with the link")] : ["Share"]),
      );
      render(isShared);
      if (isShared) {
        await navigator.clipboard?.writeText(location.href).catch(() => {});
        setStatus("Link copied: anyone with it can read this chat.");
      } else {
        setStatus("Sharing stopped: only you can read this chat.");
        dialog.close();
      }
    } catch (error) {
      setStatus(error.message);
    }
  };
  dialog.showModal();
}

// On a narrow screen the chat list is folded behind the "Chats" button.
const sidebarToggle = document.querySelector(".sidebar-toggle");
sidebarToggle?.addEventListener("click", () => {
  const open = !app.classList.contains("sidebar-open");
  app.classList.toggle("sidebar-open", open);
  sidebarToggle.setAttribute("aria-expanded", String(open));
  if (open) document.getElementById("chat-filter")?.focus();
});

const filter = document.getElementById("chat-filter");
let filterTimer;
filter?.addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => loadSidebar(filter.value.trim()).catch((e) => setStatus(e.message)), 200);
});
loadSidebar().catch((error) => setStatus(error.message));

// Questions queued while offline are sent when the connection is back (the "online"
// event, or the service worker's Background Sync).
import("./offline-queue.js").then((queue) => queue.autoFlush(async (item) => {
  if (busy || (item.chatId && item.chatId !== chatId)) return false;
  thread.removeWhere((node) => node.classList.contains("queued-question"));
  await ask(item.question, { fromQueue: true });
  return true;
})).catch(() => { /* no IndexedDB: nothing can be queued either */ });

if (app?.dataset.runningAnswer) resumeRunningAnswer(app.dataset.runningAnswer).catch((error) => setStatus(error.message));
