// A virtual list: of `count` rows only those in view, plus `overscan` on each side, are
// in the DOM. Self-contained (no imports, no CSS needed: positions are set through the
// CSSOM, which a strict Content-Security-Policy allows).
//
//   const list = createVirtualList({
//     container,           // the scrolling element; give it a height (and an aria-label)
//     count,               // number of rows
//     renderRow(index),    // -> a new HTMLElement for that row
//     rowHeight,           // fixed row height in px, or leave it out for measured rows
//     estimateHeight = 48, // guess for rows not measured yet (variable heights)
//     overscan = 6,        // rows rendered beyond each edge of the view
//   });
//   list.setCount(n)             rows added or removed at the end; rows in view stay
//   list.refresh(index?)         render again all rows in the DOM (or one) from renderRow
//   list.scrollToIndex(i, {align = "auto"})  "auto" (nearest) | "start" | "center" | "end"
//   list.destroy()
//
// Variable heights: a ResizeObserver measures each rendered row; the rest count at the
// estimate. Row tops are a prefix sum of the heights, updated from the first changed
// row; the first row in view is found by binary search. When rows above the view change
// height, the scroll position moves with them, so what is on screen stays put.
//
// Accessibility: the container gets role="list" (unless it has a role) and each row
// role="listitem" (unless it has one), aria-setsize = count and aria-posinset = index + 1,
// so screen readers announce the total. Rows are kept in index order in the DOM, so Tab
// goes through them in order; a row that holds the focus is not removed when it scrolls
// out of view. When a row itself has the focus, ArrowUp/ArrowDown, PageUp/PageDown,
// Home/End move the focus to another row, rendering it first.

export function createVirtualList({
  container, count, renderRow, rowHeight, estimateHeight = 48, overscan = 6,
}) {
  if (!(container instanceof HTMLElement)) throw new TypeError("createVirtualList: container must be an element");
  if (typeof renderRow !== "function") throw new TypeError("createVirtualList: renderRow must be a function");
  const fixed = Number(rowHeight) > 0 ? Number(rowHeight) : 0;
  const estimate = Number(estimateHeight) > 0 ? Number(estimateHeight) : 48;
  const extra = Math.max(0, Math.floor(overscan));

  let n = 0;
  let sizes = new Float64Array(0);
  let tops = new Float64Array(1); // tops[i]: top of row i; tops[n]: total height
  let validUpTo = 0; // tops[0..validUpTo] are up to date
  const rows = new Map(); // index -> element in the DOM
  let frame = 0;
  let pending = null; // {index, align} of the last scrollToIndex, held while rows settle
  let pendingTimer = 0;

  const addedRole = !container.hasAttribute("role");
  if (addedRole) container.setAttribute("role", "list");
  const oldOverflowAnchor = container.style.overflowAnchor;
  container.style.overflowAnchor = "none";
  if (!/(auto|scroll)/.test(getComputedStyle(container).overflowY)) container.style.overflowY = "auto";
  const spacer = document.createElement("div");
  spacer.setAttribute("role", "none");
  spacer.style.position = "relative";
  spacer.style.width = "100%";
  container.append(spacer);

  function resize(m) {
    m = Math.max(0, Math.floor(Number(m) || 0));
    if (!fixed) {
      const next = new Float64Array(m).fill(estimate);
      next.set(sizes.subarray(0, Math.min(n, m)));
      sizes = next;
      const nextTops = new Float64Array(m + 1);
      nextTops.set(tops.subarray(0, Math.min(n, m) + 1));
      tops = nextTops;
      validUpTo = Math.min(validUpTo, n, m);
    }
    n = m;
  }

  function top(i) {
    if (fixed) return i * fixed;
    if (i > validUpTo) {
      for (let k = validUpTo; k < i; k++) tops[k + 1] = tops[k] + sizes[k];
      validUpTo = i;
    }
    return tops[i];
  }
  const total = () => top(n);
  const height = (i) => (fixed || sizes[i]);

  // The row at offset y (the last row when y is past the end).
  function indexAt(y) {
    if (n === 0) return 0;
    if (fixed) return Math.min(n - 1, Math.max(0, Math.floor(y / fixed)));
    top(n);
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tops[mid + 1] <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function focusedIndex() {
    const active = document.activeElement;
    if (!active || !spacer.contains(active)) return -1;
    let row = active;
    while (row.parentNode !== spacer) row = row.parentNode;
    return Number(row.dataset.vlistIndex);
  }

  const placed = new WeakMap(); // element -> "top|count" last written
  function place(i, el) {
    const y = top(i);
    const key = `${y}|${n}`;
    if (placed.get(el) === key) return;
    placed.set(el, key);
    el.style.transform = `translateY(${y}px)`;
    el.setAttribute("aria-setsize", String(n));
    el.setAttribute("aria-posinset", String(i + 1));
  }

  function build(i) {
    const el = renderRow(i);
    if (!(el instanceof HTMLElement)) throw new TypeError("createVirtualList: renderRow must return an element");
    el.dataset.vlistIndex = String(i);
    if (!el.hasAttribute("role")) el.setAttribute("role", "listitem");
    el.style.position = "absolute";
    el.style.top = "0";
    el.style.left = "0";
    el.style.right = "0";
    if (fixed) el.style.height = `${fixed}px`;
    place(i, el);
    return el;
  }

  function insert(i, el) {
    let after = null; // the rendered row with the smallest index above i
    for (const [j, other] of rows) if (j > i && (after === null || j < Number(after.dataset.vlistIndex))) after = other;
    spacer.insertBefore(el, after);
    rows.set(i, el);
    observer?.observe(el);
  }

  function drop(i) {
    const el = rows.get(i);
    rows.delete(i);
    observer?.unobserve(el);
    el.remove();
  }

  function render() {
    cancelAnimationFrame(frame);
    frame = 0;
    spacer.style.height = `${total()}px`;
    const keep = focusedIndex();
    if (n === 0) {
      for (const i of [...rows.keys()]) drop(i);
      return;
    }
    const viewTop = container.scrollTop;
    const first = Math.max(0, indexAt(viewTop) - extra);
    const last = Math.min(n - 1, indexAt(viewTop + Math.max(1, container.clientHeight) - 1) + extra);
    for (const i of [...rows.keys()]) {
      if (i >= n || ((i < first || i > last) && i !== keep)) drop(i);
    }
    for (let i = first; i <= last; i++) {
      if (!rows.has(i)) insert(i, build(i));
    }
    for (const [i, el] of rows) place(i, el);
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  function target({ index, align }) {
    const view = container.clientHeight;
    const rowTop = top(index);
    const rowBottom = rowTop + height(index);
    const now = container.scrollTop;
    let y = now;
    if (align === "start") y = rowTop;
    else if (align === "end") y = rowBottom - view;
    else if (align === "center") y = rowTop - (view - height(index)) / 2;
    else if (rowTop < now) y = rowTop;
    else if (rowBottom > now + view) y = Math.min(rowTop, rowBottom - view);
    return Math.max(0, Math.min(y, total() - view));
  }

  function applyPending() {
    if (!pending) return;
    spacer.style.height = `${total()}px`;
    const y = target(pending);
    if (Math.abs(container.scrollTop - y) >= 1) container.scrollTop = y;
    clearTimeout(pendingTimer);
    pendingTimer = setTimeout(() => { pending = null; }, 300);
  }

  // Measured heights (variable rows) and the container's own size.
  const observer = fixed ? null : new ResizeObserver((entries) => {
    const anchor = indexAt(container.scrollTop);
    const anchorTop = top(anchor);
    let changed = false;
    for (const entry of entries) {
      const el = entry.target;
      const i = Number(el.dataset.vlistIndex);
      if (rows.get(i) !== el) continue;
      const box = entry.borderBoxSize && entry.borderBoxSize[0];
      const h = box ? box.blockSize : el.offsetHeight;
      if (h > 0 && Math.abs(h - sizes[i]) >= 0.5) {
        sizes[i] = h;
        validUpTo = Math.min(validUpTo, i);
        changed = true;
      }
    }
    if (!changed) return;
    spacer.style.height = `${total()}px`;
    if (pending) applyPending();
    else {
      const shift = top(anchor) - anchorTop; // rows above the view changed height
      if (shift) container.scrollTop += shift;
    }
    // Move the rows now (no size change, so no new notifications); add and remove rows
    // in the next frame (new rows observed here would loop the observer).
    for (const [i, el] of rows) place(i, el);
    schedule();
  });
  const containerObserver = new ResizeObserver(schedule);
  containerObserver.observe(container);

  function onScroll() {
    schedule();
  }
  function onUserScroll() {
    pending = null; // the person scrolls: stop holding a scrollToIndex target
  }
  function onKeyDown(event) {
    const row = event.target;
    if (row.parentNode !== spacer || event.altKey || event.ctrlKey || event.metaKey) return;
    const i = Number(row.dataset.vlistIndex);
    const page = Math.max(1, Math.floor(container.clientHeight / (fixed || estimate)) - 1);
    const to = { ArrowDown: i + 1, ArrowUp: i - 1, PageDown: i + page, PageUp: i - page, Home: 0, End: n - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    const j = Math.max(0, Math.min(n - 1, to));
    scrollToIndex(j);
    rows.get(j)?.focus({ preventScroll: true });
  }
  container.addEventListener("scroll", onScroll, { passive: true });
  container.addEventListener("wheel", onUserScroll, { passive: true });
  container.addEventListener("touchstart", onUserScroll, { passive: true });
  container.addEventListener("keydown", onKeyDown);

  function scrollToIndex(index, { align = "auto" } = {}) {
    if (n === 0) return;
    pending = { index: Math.max(0, Math.min(n - 1, Math.floor(index))), align };
    applyPending();
    render(); // now: the caller may focus the row right away
  }

  function setCount(m) {
    resize(m);
    render();
  }

  function refresh(index) {
    const indexes = index === undefined ? [...rows.keys()] : [index];
    const keep = focusedIndex();
    for (const i of indexes) {
      if (!rows.has(i)) continue;
      drop(i);
      const el = build(i);
      insert(i, el);
      if (i === keep) el.focus({ preventScroll: true });
    }
    render();
  }

  function destroy() {
    cancelAnimationFrame(frame);
    clearTimeout(pendingTimer);
    observer?.disconnect();
    containerObserver.disconnect();
    container.removeEventListener("scroll", onScroll);
    container.removeEventListener("wheel", onUserScroll);
    container.removeEventListener("touchstart", onUserScroll);
    container.removeEventListener("keydown", onKeyDown);
    rows.clear();
    spacer.remove();
    if (addedRole) container.removeAttribute("role");
    container.style.overflowAnchor = oldOverflowAnchor;
  }

  resize(count);
  render();
  return { setCount, refresh, scrollToIndex, destroy };
}
