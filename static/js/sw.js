// RRA service worker. Served at /sw.js (scope /) by rra/pwa_views.py, which puts
// `self.RRA_SW = {version, precache, offline, staticUrl, bypass, authPaths, debug};`
// before this file: the hashed URLs of the app shell, known only to the server.
//
// - the app shell (CSS, core modules, icons, /offline/) is precached on install;
// - /static/ files with a hashed name: cache first (they never change);
// - other /static/ files, API GETs, images: network first, the cache when offline
//   (a plain static name falls back to the precached hashed copy of that file);
// - pages: stale-while-revalidate; network first right after a write (form POST, API
//   call) and on reload; the cached page, else /offline/, when the network fails;
// - POST, SSE, /api/health*, /metrics, /admin/ are never touched;
// - pages and API answers are cached per person: the caches are named after the opaque
//   viewer id in the `rra_viewer` cookie (read with the Cookie Store API; "anonymous"
//   without it), only the current person's are ever read, and the others are deleted
//   as soon as the person changes. Where a worker cannot read cookies, nothing personal
//   is cached (offline shows /offline/). Signing in or out (site or admin) drops them
//   too, and the server's Clear-Site-Data on every session end drops everything;
// - a new version waits until the page posts SKIP_WAITING (static/js/pwa.js);
// - Background Sync `rra-questions`: with pages of the site open, they send the queued
//   questions (static/js/offline-queue.js) and the answer streams into them; with none
//   open (the app closed), the worker sends the signed-in person's questions itself and
//   reads each answer to its end, so it is saved in the chat for the next visit.

const CONFIG = self.RRA_SW || {
  version: "unconfigured", precache: [], offline: "/offline/", staticUrl: "/static/",
  bypass: [], authPaths: [], debug: true, viewerCookie: "rra_viewer",
};
const SHELL = `rra-shell-${CONFIG.version}`;
const STATIC = "rra-static";
const DATA = "rra-data-";   // + viewer id
const PAGES = "rra-pages-"; // + viewer id
const LIMITS = { [STATIC]: 150, [DATA]: 400, [PAGES]: 60 };
const limitOf = (name) => LIMITS[name] ?? LIMITS[name.startsWith(PAGES) ? PAGES : DATA];
let knownViewer = null;

// Whose pages these are: the viewer cookie's value, "anonymous" without one, null when
// this browser's workers cannot read cookies (then nothing personal is cached). A
// change of person deletes the previous person's caches before anything is read.
async function viewer() {
  if (!self.cookieStore) return null;
  let current;
  try {
    current = (await self.cookieStore.get(CONFIG.viewerCookie))?.value || "anonymous";
  } catch {
    return null;
  }
  if (current !== knownViewer) {
    const others = (await caches.keys()).filter((name) =>
      (name.startsWith(PAGES) || name.startsWith(DATA)) && !name.endsWith(`-${current}`)
      || name === "rra-pages" || name === "rra-data");
    await Promise.all(others.map((name) => caches.delete(name)));
    knownViewer = current;
  }
  return current;
}
const HASHED = /\.[0-9a-f]{12}\.[A-Za-z0-9]+$/;
const FRESH_AFTER_WRITE_MS = 10000;
// Modules import each other by plain name ("./api.js"): offline, such a request gets the
// precached hashed copy of that file.
const PLAIN_TO_HASHED = new Map(CONFIG.precache.filter((url) => HASHED.test(url))
  .map((url) => [url.replace(/\.[0-9a-f]{12}(\.[A-Za-z0-9]+)$/, "$1"), url]));
let freshUntil = 0;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL).then((cache) =>
      cache.addAll(CONFIG.precache.map((url) => new Request(url, { cache: "reload" })))));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const stale = (await caches.keys()).filter((name) => name.startsWith("rra-shell-") && name !== SHELL);
    await Promise.all(stale.map((name) => caches.delete(name)));
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "SKIP_WAITING") self.skipWaiting();
});

self.addEventListener("sync", (event) => {
  if (event.tag === "rra-questions") event.waitUntil(flushQuestions());
});

async function flushQuestions() {
  const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  if (pages.length) {
    for (const page of pages) page.postMessage({ type: "rra-flush-questions" });
    return;
  }
  // The pages' flush holds the same lock: a page opened meanwhile waits, then finds
  // the questions sent and gone, instead of sending them a second time.
  await (self.navigator.locks
    ? self.navigator.locks.request("rra-questions-flush", sendQueuedQuestions)
    : sendQueuedQuestions());
}

// The queue of static/js/offline-queue.js: IndexedDB "rra", store "questions".
function openQueue() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open("rra", 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore("questions", { keyPath: "id", autoIncrement: true });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function inQueue(db, mode, work) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction("questions", mode);
    const request = work(tx.objectStore("questions"));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

// Sends only the questions the signed-in person queued, as that person. A failure the
// server may get over (offline, 429, 5xx) rejects, and the browser retries the sync
// later; a refusal (4xx) keeps the question for the chat page to show.
async function sendQueuedQuestions() {
  const who = await viewer();
  if (!who || who === "anonymous") return;
  const csrf = (await self.cookieStore.get(CONFIG.csrfCookie))?.value;
  if (!csrf) return;
  const db = await openQueue();
  try {
    const items = (await inQueue(db, "readonly", (store) => store.getAll())).sort((a, b) => a.id - b.id);
    for (const item of items.filter((queued) => queued.viewer === who)) {
      const target = item.chatId ? `/api/chats/${encodeURIComponent(item.chatId)}/messages` : "/api/chats";
      const response = await fetch(target, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrf },
        body: JSON.stringify({ question: item.question }),
      });
      if (response.status === 429 || response.status >= 500) throw new Error(`not sent (${response.status})`);
      if (!response.ok) continue;
      await response.text(); // the answer is saved as it streams: read it to its end
      await inQueue(db, "readwrite", (store) => store.delete(item.id));
    }
  } finally {
    db.close();
  }
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method !== "GET") {
    freshUntil = Date.now() + FRESH_AFTER_WRITE_MS;
    if (CONFIG.authPaths.includes(url.pathname)) event.waitUntil(forgetPerson());
    return;
  }
  if (CONFIG.bypass.some((prefix) => url.pathname.startsWith(prefix))) return;
  if ((request.headers.get("Accept") || "").includes("text/event-stream")) return;
  if (request.mode === "navigate") {
    event.respondWith(page(event));
  } else if (url.pathname.startsWith(CONFIG.staticUrl)) {
    const immutable = HASHED.test(url.pathname) && !CONFIG.debug;
    event.respondWith(immutable ? cacheFirst(event) : networkFirst(event, STATIC));
  } else if (url.pathname.startsWith("/api/")) {
    event.respondWith(personal(DATA).then((name) => networkFirst(event, name, offlineApiAnswer)));
  } else if (request.destination === "image") {
    event.respondWith(personal(DATA).then((name) => networkFirst(event, name)));
  }
});

function cacheable(response) {
  return response.status === 200 && response.type === "basic"
    && !/no-store/i.test(response.headers.get("Cache-Control") || "")
    && !(response.headers.get("Content-Type") || "").startsWith("text/event-stream");
}

// The current person's cache of this kind (null: nothing personal may be cached).
async function personal(kind) {
  const who = await viewer();
  return who === null ? null : kind + who;
}

async function put(name, request, response) {
  if (name === null) return;
  // The person may have changed while the request was out: never file their answer
  // under someone else.
  if (name !== STATIC && name !== SHELL && name !== (await personal(name.startsWith(PAGES) ? PAGES : DATA))) return;
  const cache = await caches.open(name);
  await cache.put(request, response);
  const keys = await cache.keys();
  // Oldest first: drop what is over the limit.
  await Promise.all(keys.slice(0, Math.max(0, keys.length - limitOf(name))).map((key) => cache.delete(key)));
}

// A cached answer from this cache only (or, for shared files, any cache but a person's).
async function cachedIn(name, request) {
  if (name === null) return undefined;
  if (name === STATIC) {
    for (const shared of [STATIC, SHELL]) {
      const hit = await caches.match(request, { ignoreVary: true, cacheName: shared });
      if (hit) return hit;
    }
    return undefined;
  }
  return caches.match(request, { ignoreVary: true, cacheName: name });
}

async function cacheFirst(event) {
  const cached = await cachedIn(STATIC, event.request);
  if (cached) return cached;
  const response = await fetch(event.request);
  if (cacheable(response)) event.waitUntil(put(STATIC, event.request, response.clone()));
  return response;
}

async function networkFirst(event, name, fallback) {
  const { request } = event;
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    const hashed = PLAIN_TO_HASHED.get(new URL(request.url).pathname);
    const cached = (await cachedIn(name, request))
      || (hashed && (await cachedIn(STATIC, hashed)));
    if (cached) return cached;
    if (fallback) return fallback();
    throw error;
  }
  if (cacheable(response)) {
    event.waitUntil(put(name, request, response.clone()));
  } else if (response.status >= 502 && response.status <= 504) {
    // The server is unreachable behind a proxy: as good as offline.
    return (await cachedIn(name, request)) || response;
  }
  return response;
}

function offlineApiAnswer() {
  const error = {
    status: 503, code: "offline",
    message: "You are offline, and this was not saved for offline use.",
  };
  return new Response(JSON.stringify({ error }), {
    status: 503, headers: { "Content-Type": "application/json", "X-RRA-Offline": "1" },
  });
}

async function page(event) {
  const { request } = event;
  const name = await personal(PAGES);
  const cached = await cachedIn(name, request);
  const network = fetch(request).then((response) => {
    if (cacheable(response)) event.waitUntil(put(name, request, response.clone()));
    return response;
  });
  const wantsFresh = CONFIG.debug || Date.now() < freshUntil
    || request.cache === "reload" || request.cache === "no-cache";
  if (cached && !wantsFresh) {
    event.waitUntil(network.catch(() => undefined));
    return cached;
  }
  try {
    const response = await network;
    if (cached && response.status >= 502 && response.status <= 504) return cached;
    return response;
  } catch {
    return cached || (await caches.match(CONFIG.offline)) || Response.error();
  }
}

// Someone signs in or out: what was cached belongs to the previous person.
async function forgetPerson() {
  const personalCaches = (await caches.keys()).filter((name) =>
    name.startsWith(PAGES) || name.startsWith(DATA) || name === "rra-pages" || name === "rra-data");
  await Promise.all(personalCaches.map((name) => caches.delete(name)));
  knownViewer = null;
}
