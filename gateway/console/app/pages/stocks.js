import { get } from "../api.js";
import { clear, compact, errorBox, field, h, loading, num, pct, select, signClass, table } from "../ui.js";

const SORTS = [
  ["ticker", "Ticker A–Z"],
  ["-change_percent", "Biggest gain"],
  ["change_percent", "Biggest loss"],
  ["-volume", "Most traded"],
  ["-market_cap", "Largest"],
  ["-price", "Highest price"],
  ["name", "Name A–Z"],
];
const SECTORS = ["", "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials", "Health Care", "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities"];
const FILTERS = ["q", "sector", "exchange", "min_price", "max_price", "min_change_percent", "max_change_percent", "min_market_cap", "sort"];

// The stock list: the API's filters and sort in the form (and in the URL, so a view can be
// shared), and cursor paging: "Next" follows next_cursor, "Previous" goes back along the
// cursors already seen.
export function stocksPage(root, { params, navigate }) {
  const form = h("form", { class: "card filters", role: "search", "aria-label": "Filter stocks" });
  const inputs = {
    q: h("input", { name: "q", type: "search", value: params.get("q") || "", placeholder: "ticker or name" }),
    sector: select("sector", SECTORS.map((s) => [s, s || "Any sector"]), params.get("sector")),
    exchange: select("exchange", [["", "Any exchange"], ["NYSE", "NYSE"], ["NASDAQ", "NASDAQ"], ["AMEX", "AMEX"]], params.get("exchange")),
    min_price: h("input", { name: "min_price", type: "number", step: "any", min: "0", value: params.get("min_price") || "" }),
    max_price: h("input", { name: "max_price", type: "number", step: "any", min: "0", value: params.get("max_price") || "" }),
    min_change_percent: h("input", { name: "min_change_percent", type: "number", step: "any", value: params.get("min_change_percent") || "" }),
    max_change_percent: h("input", { name: "max_change_percent", type: "number", step: "any", value: params.get("max_change_percent") || "" }),
    min_market_cap: h("input", { name: "min_market_cap", type: "number", step: "any", min: "0", value: params.get("min_market_cap") || "" }),
    sort: select("sort", SORTS, params.get("sort") || "ticker"),
  };
  form.append(
    field("Search", inputs.q),
    field("Sector", inputs.sector),
    field("Exchange", inputs.exchange),
    field("Min price", inputs.min_price),
    field("Max price", inputs.max_price),
    field("Min change %", inputs.min_change_percent),
    field("Max change %", inputs.max_change_percent),
    field("Min market cap", inputs.min_market_cap),
    field("Sort by", inputs.sort),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply"), h("button", { type: "reset", class: "secondary" }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) if (inputs[name].value) next.set(name, inputs[name].value);
    navigate("stocks", next);
  });
  form.addEventListener("reset", () => setTimeout(() => navigate("stocks", new URLSearchParams()), 0));
  const results = h("div", { class: "card", "aria-live": "polite" });
  root.append(h("h1", {}, "Stocks"), form, results);

  const query = { limit: 25 };
  for (const name of FILTERS) if (params.get(name)) query[name] = params.get(name);
  const cursors = [null]; // cursors of the pages seen; the last is the current page's
  const show = async () => {
    clear(results, loading("Loading stocks…"));
    results.setAttribute("aria-busy", "true");
    try {
      const page = await get("/stocks", { ...query, cursor: cursors[cursors.length - 1] });
      clear(
        results,
        table(
          [
            ["Ticker", (r) => h("a", { href: `#/stocks/${r.ticker}` }, r.ticker)],
            ["Name", (r) => r.name],
            ["Sector", (r) => r.sector],
            ["Price", (r) => num(r.last_price), { numeric: true }],
            ["Change", (r) => h("span", { class: signClass(r.change_percent) }, pct(r.change_percent)), { numeric: true }],
            ["Volume", (r) => compact(r.volume), { numeric: true }],
            ["Market cap", (r) => compact(r.market_cap), { numeric: true }],
          ],
          page.items,
          { caption: `Page ${cursors.length}`, empty: "No stock matches these filters." },
        ),
        h(
          "nav",
          { class: "pager", "aria-label": "Pages" },
          h("button", { type: "button", class: "secondary", disabled: cursors.length === 1, onclick: () => { cursors.pop(); show(); } }, "← Previous"),
          h("button", { type: "button", class: "secondary", disabled: !page.next_cursor, onclick: () => { cursors.push(page.next_cursor); show(); } }, "Next →"),
        ),
      );
    } catch (error) {
      clear(results, errorBox(error, "Stocks"));
    } finally {
      results.removeAttribute("aria-busy");
    }
  };
  show();
}
