import { request } from "../api.js";
import { alerts } from "../live.js";
import { clear, errorBox, field, h, load, select, table, when } from "../ui.js";

const CONDITIONS = [
  ["price_above", "Price above", "threshold"],
  ["price_below", "Price below", "threshold"],
  ["percent_move_up", "Day's move up ≥ %", "threshold"],
  ["percent_move_down", "Day's move down ≥ %", "threshold"],
  ["ma_cross_above", "Crosses above moving average", "window"],
  ["ma_cross_below", "Crosses below moving average", "window"],
  ["recommendation_change", "Recommendation changes", null],
];

export function alertsPage(root) {
  const rulesBox = h("div", { class: "card" });
  const historyBox = h("div", { class: "card" });
  const live = h("ol", { class: "live-alerts", "aria-live": "polite" });
  const status = h("div", { "aria-live": "polite" });
  const ticker = h("input", { name: "ticker", required: true, autocapitalize: "characters" });
  const condition = select("condition", CONDITIONS.map(([v, t]) => [v, t]), "price_above");
  const threshold = h("input", { name: "threshold", type: "number", step: "any" });
  const windowDays = h("input", { name: "window_days", type: "number", min: "2", max: "200", value: "50" });
  const cooldown = h("input", { name: "cooldown_seconds", type: "number", min: "0", value: "300" });
  const thresholdField = field("Threshold", threshold);
  const windowField = field("Window (days)", windowDays);
  const sync = () => {
    const need = CONDITIONS.find(([v]) => v === condition.value)[2];
    thresholdField.hidden = need !== "threshold";
    windowField.hidden = need !== "window";
  };
  condition.addEventListener("change", sync);
  sync();
  // A rule applies to one ticker, or to each ticker of one of the user's watchlists.
  const scope = select("scope", [["", "One ticker"]], "");
  const tickerField = field("Ticker", ticker);
  scope.addEventListener("change", () => {
    tickerField.hidden = Boolean(scope.value);
    ticker.required = !scope.value;
  });
  request("GET", "/watchlists", { query: { limit: 50 } })
    .then((page) => page.items.forEach((w) => scope.append(h("option", { value: w.id }, `Watchlist: ${w.name}`))))
    .catch(() => undefined); // without watchlists, rules are per ticker
  const form = h("form", { class: "card filters", "aria-labelledby": "new-rule" }, h("h2", { id: "new-rule" }, "New rule"), field("Applies to", scope), tickerField, field("Condition", condition), thresholdField, windowField, field("Cooldown (s)", cooldown), h("div", { class: "actions" }, h("button", { type: "submit" }, "Create rule")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const need = CONDITIONS.find(([v]) => v === condition.value)[2];
    const body = { condition: condition.value, cooldown_seconds: Number(cooldown.value || 300) };
    if (scope.value) body.watchlist_id = scope.value;
    else body.ticker = ticker.value.trim().toUpperCase();
    if (need === "threshold") body.threshold = threshold.value;
    if (need === "window") body.window_days = Number(windowDays.value);
    status.replaceChildren(h("p", { class: "loading", role: "status" }, "Creating…"));
    try {
      const rule = await request("POST", "/alerts", { json: body });
      status.replaceChildren(h("p", { class: "ok", role: "status" }, `Rule created for ${rule.ticker || (rule.tickers || []).join(", ")}.`));
      showRules();
    } catch (error) {
      status.replaceChildren(errorBox(error, "Rule not created"));
    }
  });
  root.append(h("h1", {}, "Alerts"), h("div", { class: "grid-2" }, form, h("section", { class: "card", "aria-labelledby": "live-title" }, h("h2", { id: "live-title" }, "Arriving now"), live)), rulesBox, historyBox);
  const off = alerts.on((m) => {
    if (m.type !== "alert") return;
    live.prepend(h("li", { class: "alert-item" }, h("strong", {}, m.ticker), " ", m.message, " ", h("small", {}, when(m.fired_at))));
    showRules(); // its state (armed, last fired) changed
    showHistory();
  });
  const showRules = () => load(rulesBox, () => request("GET", "/alerts"), (list) => [
    h("h2", {}, "My rules"),
    table([
      ["Ticker", (r) => (r.ticker ? h("a", { href: `#/stocks/${r.ticker}` }, r.ticker) : h("a", { href: `#/watchlists/${r.watchlist_id}` }, `watchlist (${(r.tickers || []).join(", ")})`))],
      ["Condition", (r) => r.condition.replaceAll("_", " ")],
      ["Threshold / window", (r) => r.threshold ?? (r.window_days ? `${r.window_days} days` : "—")],
      ["State", (r) => `${r.active ? "active" : "paused"}${r.armed ? ", armed" : ""}`],
      ["Last fired", (r) => when(r.last_fired_at)],
      ["", (r) => [
        h("button", { type: "button", class: "link", onclick: () => act(() => request("PATCH", `/alerts/${r.id}`, { json: { active: !r.active } })) }, r.active ? "Pause" : "Resume"),
        " ",
        h("button", { type: "button", class: "link danger", "aria-label": `Delete the ${r.ticker || "watchlist"} rule`, onclick: () => act(() => request("DELETE", `/alerts/${r.id}`)) }, "Delete"),
      ]],
    ], list.items, { empty: "No rules yet." }),
  ], "Rules");
  const act = async (call) => {
    try {
      await call();
      showRules();
    } catch (error) {
      clear(status, errorBox(error));
    }
  };
  const showHistory = () => load(historyBox, () => request("GET", "/alerts/history", { query: { limit: 25 } }), (page) => [
    h("h2", {}, "History"),
    table([
      ["Fired", (a) => when(a.fired_at)],
      ["Ticker", (a) => a.ticker],
      ["Message", (a) => a.message],
    ], page.items, { empty: "No alert has fired yet." }),
  ], "History");
  showRules();
  showHistory();
  return off;
}
