// The /dev/vlist/ page (DEBUG only, and the browser tests): 10,000 rows of 1 to 4 lines.
import { createVirtualList } from "./vlist.js";

const container = document.getElementById("vlist-demo");
const count = Number(container.dataset.count);
const words = "manual page torque valve bearing pump filter seal gasket sensor relay fuse".split(" ");

function renderRow(i) {
  const row = document.createElement("div");
  row.className = "vlist-demo-row";
  row.tabIndex = 0;
  const title = document.createElement("strong");
  title.textContent = `Row ${i + 1}`;
  const text = document.createElement("p");
  const lines = 1 + ((i * 7919) % 4); // 1-4 lines, fixed per row
  text.textContent = Array.from({ length: lines * 9 }, (_, k) => words[(i + k * 5) % words.length]).join(" ");
  row.append(title, text);
  return row;
}

const list = createVirtualList({ container, count, renderRow, estimateHeight: 80 });
window.rraVlistDemo = list; // for the browser tests

document.getElementById("vlist-jump").addEventListener("submit", (event) => {
  event.preventDefault();
  const index = Number(document.getElementById("vlist-index").value) - 1;
  list.scrollToIndex(index, { align: "start" });
  container.querySelector(`[data-vlist-index="${index}"]`)?.focus({ preventScroll: true });
});
