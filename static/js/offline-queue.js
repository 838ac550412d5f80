// Questions asked while offline, kept in IndexedDB (database "rra", store "questions")
// until they can be sent. Self-contained (no imports).
//
//   queueQuestion(chatId, question) -> Promise<item>
//       item = {id, chatId, question, queuedAt (ISO time), viewer}; also asks for Background
//       Sync ("rra-questions") where the browser has it. Showing "Queued — will send
//       when you're back online" is the caller's job (QUEUED_TEXT).
//   pendingQuestions(chatId?) -> Promise<item[]>     oldest first
//   discardQuestion(id) -> Promise<void>
//   flush(sendFn) -> Promise<{sent: item[], kept: item[], failed: {item, error} | null}>
//       Calls `await sendFn(item)` for each queued question, oldest first, one at a time:
//       resolves false  -> not sent now (e.g. another chat's): kept, go on;
//       resolves other  -> sent: removed from the queue;
//       throws          -> kept, and the flush stops (still offline, server error).
//       One flush at a time across tabs (Web Locks); a call during a flush gets that one.
//       A question queued by another person (the `rra_viewer` cookie it was queued
//       under) is never sent as this one: it is dropped.
//       Offline, it sends nothing.
//   autoFlush(sendFn) -> stop()
//       Flushes now if online, on the "online" event, and when the service worker asks
//       (its Background Sync handler posts {type: "rra-flush-questions"}).
//   QUEUE_EVENT: "rra:questions", dispatched on window with detail {pending: n} after
//       every change.

export const QUEUE_EVENT = "rra:questions";
export const QUEUED_TEXT = "Queued — will send when you're back online";
const STORE = "questions";
const SYNC_TAG = "rra-questions";

let opening = null;

// Who is signed in on this browser: the opaque id the server puts in `rra_viewer`.
function viewerNow() {
  const match = document.cookie.match(/(?:^|;\s*)rra_viewer=([^;]*)/);
  return (match && match[1]) || "anonymous";
}
let flushing = null;

function database() {
  opening ??= new Promise((resolve, reject) => {
    const request = indexedDB.open("rra", 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
    };
    request.onsuccess = () => {
      const db = request.result;
      db.onversionchange = () => { db.close(); opening = null; };
      resolve(db);
    };
    request.onerror = () => { opening = null; reject(request.error); };
  });
  return opening;
}

async function transact(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

async function changed() {
  const pending = await transact("readonly", (store) => store.count());
  window.dispatchEvent(new CustomEvent(QUEUE_EVENT, { detail: { pending } }));
}

export async function queueQuestion(chatId, question) {
  const text = String(question ?? "").trim();
  if (!text) throw new TypeError("queueQuestion: the question is empty");
  const item = {
    chatId: chatId == null ? null : String(chatId), question: text,
    queuedAt: new Date().toISOString(), viewer: viewerNow(),
  };
  item.id = await transact("readwrite", (store) => store.add(item));
  await changed();
  requestSync();
  return item;
}

export async function pendingQuestions(chatId) {
  const items = await transact("readonly", (store) => store.getAll());
  items.sort((a, b) => a.id - b.id);
  return chatId === undefined ? items : items.filter((item) => item.chatId === String(chatId));
}

export async function discardQuestion(id) {
  await transact("readwrite", (store) => store.delete(id));
  await changed();
}

export function flush(sendFn) {
  flushing ??= exclusively(() => drain(sendFn)).finally(() => { flushing = null; });
  return flushing;
}

function exclusively(work) {
  return navigator.locks ? navigator.locks.request("rra-questions-flush", work) : work();
}

async function drain(sendFn) {
  const result = { sent: [], kept: [], failed: null };
  if (!navigator.onLine) {
    result.kept = await pendingQuestions();
    return result;
  }
  for (const item of await pendingQuestions()) {
    // Discarded meanwhile, or sent by another tab before we held the lock?
    if (!(await transact("readonly", (store) => store.getKey(item.id)))) continue;
    if (item.viewer && item.viewer !== viewerNow()) {
      await discardQuestion(item.id); // another person's question
      continue;
    }
    if (result.failed) {
      result.kept.push(item);
      continue;
    }
    let outcome;
    try {
      outcome = await sendFn(item);
    } catch (error) {
      result.failed = { item, error };
      result.kept.push(item);
      continue;
    }
    if (outcome === false) {
      result.kept.push(item);
    } else {
      await discardQuestion(item.id);
      result.sent.push(item);
    }
  }
  return result;
}

async function requestSync() {
  try {
    const registration = await navigator.serviceWorker?.getRegistration();
    await registration?.sync?.register(SYNC_TAG);
  } catch {
    // No Background Sync (or not allowed): the "online" event still flushes.
  }
}

export function autoFlush(sendFn) {
  const run = () => { flush(sendFn).catch(() => undefined); };
  const onMessage = (event) => {
    if (event.data && event.data.type === "rra-flush-questions") run();
  };
  window.addEventListener("online", run);
  navigator.serviceWorker?.addEventListener("message", onMessage);
  if (navigator.onLine) run();
  return () => {
    window.removeEventListener("online", run);
    navigator.serviceWorker?.removeEventListener("message", onMessage);
  };
}
