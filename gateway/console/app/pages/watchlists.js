import { get, request } from "../api.js";
import { prices } from "../live.js";
import { actionBadge, clear, compact, errorBox, field, h, load, loading, num, pct, section, signClass, table, when } from "../ui.js";

const etag = (list) => ({ "If-Match": `"v${list.version}"` });

// Watchlists: the caller's named, ordered lists (portfolio's). The list page creates and
// opens them; a list's page shows each ticker's quote (live over /ws/prices) and its
// latest call, and adds, removes, reorders, renames and deletes.
export function watchlistsPage(root, { navigate }) {
  const listBox = h("div", { class: "card" });
  const name = h("input", { name: "name", required: true, maxlength: "100" });
  const tickers = h("input", { name: "tickers", placeholder: "ACME, BRGT", autocapitalize: "characters" });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card inline", "aria-labelledby": "new-list" }, h("h2", { id: "new-list" }, "New watchlist"), field("Name", name), field("Tickers", tickers, "Optional, comma-separated"), h("button", { type: "submit" }, "Create"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren(loading("Creating…"));
    try {
      const list = await request("POST", "/watchlists", { json: { name: name.value, tickers: splitTickers(tickers.value) } });
      navigate(`watchlists/${list.id}`);
    } catch (error) {
      status.replaceChildren(errorBox(error, "Watchlist not created"));
    }
  });
  root.append(h("h1", {}, "Watchlists"), listBox, form);
  load(listBox, () => get("/watchlists", { limit: 50 }), (page) => [
    h("h2", {}, "My watchlists"),
    table([
      ["Name", (w) => h("a", { href: `#/watchlists/${w.id}` }, w.name)],
      ["Tickers", (w) => w.tickers.join(", ") || "—"],
      ["Updated", (w) => when(w.updated_at)],
    ], page.items, { empty: "No watchlist yet." }),
  ], "Watchlists");
}

function splitTickers(text) {
  return text.split(/[\s,]+/).map((s) => s.trim().toUpperCase()).filter(Boolean);
}

export function watchlistPage(root, { args, navigate }) {
  const id = args[0];
  const body = h("div");
  const status = h("div", { "aria-live": "polite" });
  root.append(h("h1", {}, "Watchlist"), status, body);
  let stop = () => undefined;
  const off = prices.on((m) => {
    if (m.type !== "quote") return;
    const cell = body.querySelector(`td.price[data-ticker="${CSS.escape(m.ticker)}"]`);
    if (!cell) return;
    cell.textContent = num(m.price);
    const change = body.querySelector(`td.change[data-ticker="${CSS.escape(m.ticker)}"]`);
    if (change) change.replaceChildren(h("span", { class: signClass(m.change_percent) }, pct(m.change_percent)));
  });
  const change = async (method, path, json, list) => {
    status.replaceChildren(loading("Saving…"));
    try {
      await request(method, path, { json, headers: etag(list) });
      status.replaceChildren();
      if (method === "DELETE" && path === `/watchlists/${id}`) navigate("watchlists");
      else show();
    } catch (error) {
      status.replaceChildren(errorBox(error, "Not changed"));
    }
  };
  const show = () => load(body, () => get(`/watchlists/${id}`), (list) => {
    root.querySelector("h1").textContent = list.name;
    stop();
    stop = list.tickers.length ? prices.watch(list.tickers) : () => undefined;
    const move = (ticker, by) => {
      const order = [...list.tickers];
      const i = order.indexOf(ticker);
      const j = i + by;
      if (j < 0 || j >= order.length) return;
      [order[i], order[j]] = [order[j], order[i]];
      change("PUT", `/watchlists/${id}/tickers`, { tickers: order }, list);
    };
    const add = h("input", { name: "ticker", required: true, autocapitalize: "characters" });
    const addForm = h("form", { class: "inline", "aria-label": "Add a ticker" }, field("Add a ticker", add), h("button", { type: "submit" }, "Add"));
    addForm.addEventListener("submit", (event) => {
      event.preventDefault();
      change("POST", `/watchlists/${id}/tickers`, { ticker: add.value.trim().toUpperCase() }, list);
    });
    const rename = h("input", { name: "name", value: list.name, required: true, maxlength: "100" });
    const renameForm = h("form", { class: "inline", "aria-label": "Rename" }, field("Name", rename), h("button", { type: "submit", class: "secondary" }, "Rename"),
      h("button", { type: "button", class: "secondary danger", onclick: () => change("DELETE", `/watchlists/${id}`, undefined, list) }, "Delete this watchlist"));
    renameForm.addEventListener("submit", (event) => {
      event.preventDefault();
      change("PATCH", `/watchlists/${id}`, { name: rename.value }, list);
    });
    return [
      section("Tickers",
        !list.quotes_available ? h("p", { class: "warning" }, list.quotes_note || "Quotes are unavailable.") : null,
        !list.recommendations_available ? h("p", { class: "warning" }, list.recommendations_note || "Recommendations are unavailable.") : null,
        table([
          ["Ticker", (l) => h("a", { href: `#/stocks/${l.ticker}` }, l.ticker)],
          ["Price", (l) => (l.quote ? num(l.quote.price) : l.status), { numeric: true, cell: (l) => ({ class: "num price", "data-ticker": l.ticker }) }],
          ["Change", (l) => (l.quote ? h("span", { class: signClass(l.quote.change_percent) }, pct(l.quote.change_percent)) : "—"), { numeric: true, cell: (l) => ({ class: "num change", "data-ticker": l.ticker }) }],
          ["Volume", (l) => (l.quote ? compact(l.quote.volume) : "—"), { numeric: true }],
          ["Call", (l) => (l.recommendation ? h("a", { href: `#/recommendations/${l.recommendation.id}` }, actionBadge(l.recommendation.action)) : "—")],
          ["Confidence", (l) => (l.recommendation ? pct(l.recommendation.confidence, 0, { ratio: true, sign: false }) : "—"), { numeric: true }],
          ["Target", (l) => (l.recommendation ? num(l.recommendation.target_price) : "—"), { numeric: true }],
          ["Upside", (l) => (l.recommendation ? pct(l.recommendation.upside, 1, { ratio: true }) : "—"), { numeric: true }],
          ["", (l) => [
            h("button", { type: "button", class: "link", "aria-label": `Move ${l.ticker} up`, onclick: () => move(l.ticker, -1) }, "↑"),
            h("button", { type: "button", class: "link", "aria-label": `Move ${l.ticker} down`, onclick: () => move(l.ticker, 1) }, "↓"),
            h("button", { type: "button", class: "link danger", "aria-label": `Remove ${l.ticker}`, onclick: () => change("DELETE", `/watchlists/${id}/tickers/${encodeURIComponent(l.ticker)}`, undefined, list) }, "Remove"),
          ]],
        ], list.items, { empty: "No ticker yet." }),
        h("p", { class: "meta" }, list.recommendations_as_of ? `Calls from the run of ${list.recommendations_as_of}. ` : "", "Prices update live."),
        addForm),
      section("Settings", renameForm),
    ];
  }, "Watchlist");
  show();
  return () => { off(); stop(); };
}
