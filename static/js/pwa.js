// Registers the service worker (/sw.js) and offers new versions with a small banner.
// Loaded by base.html on every page; it registers on load. Self-contained (no imports).
//
//   registerServiceWorker({url = "/sw.js", scope = "/"} = {})
//     -> Promise<ServiceWorkerRegistration | null>   (null: unsupported or refused)
//
// A new worker waits (sw.js never skips waiting on its own). When one is installed
// while an older one controls the page, a non-modal banner says "A new version is
// available" with a Reload button: it posts SKIP_WAITING to the waiting worker and the
// page reloads once that worker takes control (controllerchange). An "Install app" button
// appears when the browser offers installation (beforeinstallprompt). <html> gets the class
// "offline" while the browser is offline, for pages that want to show it.

const UPDATE_CHECK_MS = 60 * 60 * 1000;
let registering = null;
let reloadRequested = false;

export function registerServiceWorker({ url = "/sw.js", scope = "/" } = {}) {
  if (!("serviceWorker" in navigator)) return Promise.resolve(null);
  registering ??= register(url, scope);
  return registering;
}

async function register(url, scope) {
  let registration;
  try {
    registration = await navigator.serviceWorker.register(url, { scope, updateViaCache: "none" });
  } catch (error) {
    console.warn("RRA: the service worker could not be registered.", error);
    return null;
  }
  const offer = (worker) => {
    // No controller: a first install, which activates by itself; nothing to offer.
    if (worker && navigator.serviceWorker.controller) showUpdateBanner(worker);
  };
  offer(registration.waiting);
  registration.addEventListener("updatefound", () => {
    const worker = registration.installing;
    worker?.addEventListener("statechange", () => {
      if (worker.state === "installed") offer(worker);
    });
  });
  // A tab left open for days never navigates: look for a new version when it comes back.
  let checked = Date.now();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && Date.now() - checked > UPDATE_CHECK_MS) {
      checked = Date.now();
      registration.update().catch(() => undefined);
    }
  });
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (reloadRequested) {
      reloadRequested = false;
      window.location.reload();
    }
  });
  return registration;
}

function showUpdateBanner(worker) {
  document.querySelector(".pwa-update")?.remove();
  const banner = document.createElement("div");
  banner.className = "pwa-update";
  banner.setAttribute("role", "status");
  const text = document.createElement("span");
  text.textContent = "A new version is available.";
  const reload = document.createElement("button");
  reload.type = "button";
  reload.className = "primary";
  reload.textContent = "Reload";
  const later = document.createElement("button");
  later.type = "button";
  later.className = "link";
  later.textContent = "Later";
  banner.append(text, reload, later);
  reload.addEventListener("click", () => {
    reload.disabled = true;
    if (worker.state === "installed") {
      reloadRequested = true;
      worker.postMessage({ type: "SKIP_WAITING" });
    } else {
      window.location.reload(); // another tab already switched to the new version
    }
  });
  later.addEventListener("click", () => banner.remove());
  worker.addEventListener("statechange", () => {
    if (worker.state === "redundant") banner.remove();
  });
  document.body.append(banner);
}

function showConnection() {
  document.documentElement.classList.toggle("offline", !navigator.onLine);
}

// Install: Chromium offers the app through beforeinstallprompt; the header's "Install
// app" button (hidden until then) shows the browser's install dialog.
let installEvent = null;
window.addEventListener("beforeinstallprompt", (event) => {
  event.preventDefault();
  installEvent = event;
  const button = document.getElementById("install-app");
  if (button) button.hidden = false;
});
document.getElementById("install-app")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  if (!installEvent) return;
  const offered = installEvent;
  installEvent = null;
  button.hidden = true; // the browser's prompt can be shown once per event
  await offered.prompt();
  await offered.userChoice?.catch(() => undefined);
});
window.addEventListener("appinstalled", () => {
  installEvent = null;
  const button = document.getElementById("install-app");
  if (button) button.hidden = true;
});

window.addEventListener("online", showConnection);
window.addEventListener("offline", showConnection);
showConnection();
registerServiceWorker();
