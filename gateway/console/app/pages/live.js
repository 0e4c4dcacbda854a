import { get } from "../api.js";
import { prices } from "../live.js";
import { clear, compact, errorBox, field, h, num, pct, signClass } from "../ui.js";

// Live prices: a watch list of tickers whose rows update in place from /ws/prices.
export function livePage(root) {
  const rows = new Map();
  const body = h("tbody");
  const state = h("span", { class: "badge" }, "…");
  const input = h("input", { name: "tickers", placeholder: "ACME, BRGT", autocapitalize: "characters" });
  const problem = h("div");
  const stops = [];
  const addRow = (ticker) => {
    if (rows.has(ticker)) return;
    const cells = { price: h("td", { class: "num price" }, "—"), change: h("td", { class: "num" }, "—"), volume: h("td", { class: "num" }, "—"), time: h("td", {}, "—") };
    const remove = h("button", { type: "button", class: "link", "aria-label": `Stop watching ${ticker}` }, "Remove");
    const row = h("tr", { dataset: { ticker } }, h("th", { scope: "row" }, h("a", { href: `#/stocks/${ticker}` }, ticker)), cells.price, cells.change, cells.volume, cells.time, h("td", {}, remove));
    const stop = prices.watch([ticker]);
    remove.addEventListener("click", () => { stop(); row.remove(); rows.delete(ticker); });
    stops.push(stop);
    rows.set(ticker, cells);
    body.append(row);
  };
  const form = h("form", { class: "card inline", "aria-label": "Watch tickers" }, field("Tickers to watch", input), h("button", { type: "submit" }, "Watch"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const t of input.value.split(/[\s,]+/).map((s) => s.trim().toUpperCase()).filter(Boolean)) addRow(t);
    input.value = "";
  });
  root.append(
    h("h1", {}, "Live prices ", state),
    form,
    problem,
    h("div", { class: "card table-wrap" }, h("table", { class: "live" }, h("caption", {}, "Quotes update as they arrive"), h("thead", {}, h("tr", {}, ["Ticker", "Price", "Change", "Day volume", "Time", ""].map((t) => h("th", { scope: "col" }, t)))), body)),
  );
  const offState = prices.onState((s) => { state.textContent = s; state.className = `badge state-${s}`; });
  const off = prices.on((m) => {
    if (m.type === "error") clear(problem, errorBox({ message: `${m.code}: ${m.message}` }));
    if (m.type === "status") clear(problem, h("p", { class: "meta" }, `Feed ${m.feed}${m.reason ? `: ${m.reason}` : ""}`));
    if (m.type !== "quote") return;
    const cells = rows.get(m.ticker);
    if (!cells) return;
    const before = Number(cells.price.dataset.value || NaN);
    cells.price.textContent = num(m.price);
    cells.price.dataset.value = String(m.price);
    cells.price.className = `num price ${m.price > before ? "tick-up" : m.price < before ? "tick-down" : ""}`;
    cells.change.replaceChildren(h("span", { class: signClass(m.change_percent) }, pct(m.change_percent)));
    cells.volume.textContent = compact(m.volume);
    cells.time.textContent = new Date(m.ts).toLocaleTimeString();
  });
  // Start with the day's most active stocks.
  get("/market/overview").then((o) => o.most_active.slice(0, 8).forEach((s) => addRow(s.ticker))).catch((e) => clear(problem, errorBox(e, "Most active")));
  return () => { off(); offState(); stops.forEach((s) => s()); };
}
