import { get, newIdempotencyKey, request } from "../api.js";
import { canvasBox, doughnut, lineChart } from "../charts.js";
import { clear, errorBox, field, h, keyFigures, load, loading, num, pct, section, select, signClass, table, when } from "../ui.js";

const money = (v) => num(v, 2);
const weight = (v) => pct(v, 1, { ratio: true, sign: false });

// My portfolio (the default one): valuation and positions, allocation by position and by
// sector, performance (TWR and MWR, each labelled with its method), the risk x-ray, adding
// a position, and a rebalance proposal that can be applied.
export function portfolioPage(root) {
  const summary = h("div");
  const positionsBox = h("div");
  const allocationBox = h("div", { class: "grid-2" });
  const performanceBox = h("div");
  const xrayBox = h("div");
  const addBox = h("div", { class: "card" });
  const rebalanceBox = h("div", { class: "card" });
  root.append(h("h1", {}, "My portfolio"), summary, positionsBox, allocationBox, performanceBox, xrayBox, h("div", { class: "grid-2" }, addBox, rebalanceBox));
  let current = null;

  const showValuation = () => load(summary, () => get("/portfolio"), (p) => {
    current = p;
    clear(allocationBox, allocation("By position", p.positions.map((x) => [x.ticker, Number(x.weight || 0)]).concat([["cash", Number(p.cash_weight || 0)]])),
      allocation("By sector", p.sectors.map((s) => [s.sector, Number(s.weight)]).concat([["cash", Number(p.cash_weight || 0)]])));
    clear(positionsBox, section("Positions", table([
      ["Ticker", (x) => h("a", { href: `#/stocks/${x.ticker}` }, x.ticker)],
      ["Quantity", (x) => num(x.quantity, 4), { numeric: true }],
      ["Average cost", (x) => money(x.average_cost), { numeric: true }],
      ["Price", (x) => money(x.price), { numeric: true }],
      ["Market value", (x) => h("span", { class: "market-value", dataset: { ticker: x.ticker } }, money(x.market_value)), { numeric: true }],
      ["Unrealised P&L", (x) => h("span", { class: signClass(x.unrealised_pnl) }, money(x.unrealised_pnl)), { numeric: true }],
      ["Weight", (x) => weight(x.weight), { numeric: true }],
      ["Sector", (x) => x.sector || "—"],
      ["Flag", (x) => (x.sell_flag ? h("a", { class: "badge action-sell", href: `#/recommendations/${x.sell_flag.recommendation_id}` }, "SELL call") : "")],
    ], p.positions, { empty: "No open position." })));
    return section(p.name, keyFigures([
      ["Total value", `${money(p.total_value)} ${p.base_currency}`],
      ["Market value", money(p.market_value)],
      ["Cash", money(p.cash)],
      ["Unrealised P&L", money(p.unrealised_pnl), signClass(p.unrealised_pnl)],
      ["Realised P&L", money(p.realised_pnl), signClass(p.realised_pnl)],
      ["Dividends", money(p.dividends)],
      ["Prices as of", p.prices_available ? when(p.prices_as_of) : "market unavailable: last trade prices"],
    ]));
  }, "Portfolio");

  const showPerformance = () => load(performanceBox, () => get("/portfolio/performance"), (perf) => {
    const { box, canvas } = canvasBox("Portfolio value and time-weighted return index over time");
    queueMicrotask(() => lineChart(canvas, {
      labels: perf.series.map((s) => s.date),
      datasets: [
        { label: `value (${perf.base_currency})`, data: perf.series.map((s) => Number(s.value)), yAxisID: "y" },
        { label: "TWR index (1 = start)", data: perf.series.map((s) => Number(s.twr_index)), yAxisID: "y1" },
      ],
    }));
    const twrMethod = perf.periods.find((p) => p.twr)?.twr.method || "each day's return chained, so deposits and withdrawals do not count as performance";
    const mwrMethod = perf.periods.find((p) => p.mwr)?.mwr.method || "the annual rate (XIRR) that the money actually invested earned, timing of flows included";
    return section("Performance", perf.series.length ? box : h("p", { class: "empty" }, "No history yet: the chart starts after the portfolio's first day."),
      table([
        ["Period", (p) => p.period],
        ["From", (p) => p.start],
        ["TWR (time-weighted)", (p) => (p.available ? pct(p.twr.value, 2, { ratio: true }) : p.note || "—"), { numeric: true }],
        ["MWR (money-weighted, annual)", (p) => (p.available ? pct(p.mwr.value, 2, { ratio: true }) : "—"), { numeric: true }],
        ["Benchmark", (p) => (p.available ? pct(p.benchmark_return.value, 2, { ratio: true }) : "—"), { numeric: true }],
        ["Excess", (p) => (p.available ? pct(p.excess_return.value, 2, { ratio: true }) : "—"), { numeric: true }],
      ], perf.periods, { caption: `Returns by period (benchmark: ${perf.benchmark})`, empty: "No period is complete yet.", head: true }),
      h("details", {}, h("summary", {}, "What TWR and MWR mean here"), h("p", {}, h("strong", {}, "TWR: "), twrMethod || ""), h("p", {}, h("strong", {}, "MWR: "), mwrMethod || "")),
      keyFigures([["Volatility", pct(perf.volatility.value, 1, { ratio: true, sign: false })], ["Max drawdown", pct(perf.max_drawdown.value, 1, { ratio: true })], ["Beta", num(perf.beta.value)]]));
  }, "Performance");

  const showXray = () => load(xrayBox, () => get("/portfolio/xray"), (x) => section("Risk x-ray", xray(x)), "X-ray");
  const refresh = () => { showValuation(); showPerformance(); showXray(); };

  // Add a position (a BUY at the latest price unless one is given).
  const ticker = h("input", { name: "ticker", required: true, autocapitalize: "characters" });
  const quantity = h("input", { name: "quantity", type: "number", step: "any", min: "0", required: true });
  const price = h("input", { name: "price", type: "number", step: "any", min: "0" });
  const addStatus = h("div", { "aria-live": "polite" });
  const addForm = h("form", { "aria-labelledby": "add-title" }, h("h2", { id: "add-title" }, "Add a position"), field("Ticker", ticker), field("Quantity", quantity), field("Price", price, "Empty: the latest quote"), h("button", { type: "submit" }, "Add"), addStatus);
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    addStatus.replaceChildren(loading("Recording…"));
    try {
      const body = { ticker: ticker.value.trim().toUpperCase(), quantity: quantity.value };
      if (price.value) body.price = price.value;
      const recorded = await request("POST", "/portfolio/positions", {
        json: body,
        headers: { "If-Match": `"v${current ? current.version : 0}"`, "Idempotency-Key": newIdempotencyKey() },
      });
      const t = recorded.transaction;
      addStatus.replaceChildren(h("p", { class: "ok", role: "status" }, `Bought ${num(t.quantity, 4)} ${t.ticker} at ${money(t.price)}.`));
      addForm.reset();
      refresh();
    } catch (error) {
      addStatus.replaceChildren(errorBox(error, "Position not added"));
    }
  });
  addBox.append(addForm);

  // Deposit cash (a BUY needs cash: the ledger refuses one that would overdraw).
  const amount = h("input", { name: "amount", type: "number", step: "0.01", min: "0.01", required: true });
  const depositStatus = h("div", { "aria-live": "polite" });
  const depositForm = h("form", { class: "inline", "aria-label": "Deposit cash" }, field("Deposit cash", amount), h("button", { type: "submit", class: "secondary" }, "Deposit"), depositStatus);
  depositForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    depositStatus.replaceChildren(loading("Recording…"));
    try {
      await request("POST", "/portfolio/transactions", {
        json: { kind: "DEPOSIT", amount: amount.value },
        headers: { "If-Match": `"v${current ? current.version : 0}"`, "Idempotency-Key": newIdempotencyKey() },
      });
      depositStatus.replaceChildren(h("p", { class: "ok", role: "status" }, `Deposited ${money(amount.value)}.`));
      depositForm.reset();
      refresh();
    } catch (error) {
      depositStatus.replaceChildren(errorBox(error, "Deposit not recorded"));
    }
  });
  addBox.append(depositForm);

  // Rebalance: a proposal first (writes nothing), then apply it.
  const kind = select("kind", [["equal", "Equal weight"], ["recommendations", "Follow the recommendations"], ["min_variance", "Minimum variance"], ["risk_parity", "Risk parity"]], "equal");
  const cashBuffer = h("input", { name: "cash_buffer", type: "number", step: "0.01", min: "0", max: "1", value: "0.02" });
  const proposalBox = h("div", { "aria-live": "polite" });
  const rebalanceForm = h("form", { "aria-labelledby": "rebalance-title" }, h("h2", { id: "rebalance-title" }, "Rebalance"), field("Target", kind), field("Cash buffer", cashBuffer, "Fraction of value kept in cash"), h("button", { type: "submit" }, "Propose"), proposalBox);
  const target = () => (kind.value === "min_variance" || kind.value === "risk_parity" ? { kind: "optimised", method: kind.value } : { kind: kind.value });
  const propose = async (apply) => {
    proposalBox.replaceChildren(loading(apply ? "Applying the trades…" : "Working out the proposal…"));
    try {
      const proposal = await request("PUT", "/portfolio/rebalance", {
        json: { target: target(), constraints: { cash_buffer: cashBuffer.value || "0" }, apply },
        headers: apply ? { "If-Match": `"v${current ? current.version : 0}"`, "Idempotency-Key": newIdempotencyKey() } : {},
      });
      clear(proposalBox, proposalView(proposal, () => propose(true)));
      if (apply) refresh();
    } catch (error) {
      proposalBox.replaceChildren(errorBox(error, apply ? "Not applied" : "No proposal"));
    }
  };
  rebalanceForm.addEventListener("submit", (event) => { event.preventDefault(); propose(false); });
  rebalanceBox.append(rebalanceForm);
  refresh();
}

function allocation(title, pairs) {
  const shown = pairs.filter(([, w]) => w > 0);
  const { box, canvas } = canvasBox(`Allocation ${title.toLowerCase()}: ${shown.map(([n, w]) => `${n} ${(w * 100).toFixed(1)}%`).join(", ")}`, "chart square");
  queueMicrotask(() => doughnut(canvas, { labels: shown.map(([n]) => n), values: shown.map(([, w]) => +(w * 100).toFixed(2)) }));
  return section(`Allocation ${title.toLowerCase()}`, box);
}

function xray(x) {
  const r = x.risk;
  return [
    keyFigures([
      ["Largest position", x.largest_position ? `${x.largest_position.ticker} ${weight(x.largest_position.weight)}` : "—"],
      ["Effective positions", num(x.effective_positions, 1)],
      ["Cash", weight(x.cash_weight)],
      ["Volatility (ann.)", r.available ? pct(r.volatility.value, 1, { ratio: true, sign: false }) : r.note],
      ["Beta", r.available ? num(r.beta.value) : "—"],
      ["Max drawdown", r.available ? pct(r.max_drawdown.value, 1, { ratio: true }) : "—"],
    ]),
    table([["Over the limit", (b) => b.name], ["Weight", (b) => weight(b.weight), { numeric: true }], ["Limit", (b) => weight(b.limit), { numeric: true }]],
      [...x.positions_over_limit, ...x.sectors_over_limit], { empty: "No position or sector over its limit." }),
    x.sell_signals.holdings.length
      ? h("p", { class: "warning" }, "Holdings with a SELL call: ", x.sell_signals.holdings.map((s) => `${s.ticker} (${weight(s.weight)})`).join(", "))
      : h("p", {}, "No holding has a SELL call."),
  ];
}

function proposalView(p, apply) {
  return h("div", { class: "proposal" },
    p.applied ? h("p", { class: "ok", role: "status" }, `Applied: ${p.transactions.length} trades recorded.`) : null,
    keyFigures([["Method", p.target_method || "—"], ["Cash before → after", `${money(p.cash_before)} → ${money(p.cash_after)}`], ["Turnover", weight(p.turnover)], ["Estimated cost", money(p.estimated_cost)]]),
    table([["Side", (t) => t.side], ["Ticker", (t) => t.ticker], ["Quantity", (t) => num(t.quantity, 4), { numeric: true }], ["Price", (t) => money(t.price), { numeric: true }], ["Value", (t) => money(t.value), { numeric: true }]], p.trades, { caption: "Trades", empty: "No trade needed." }),
    table([["Ticker", (l) => l.ticker], ["Target", (l) => weight(l.target), { numeric: true }], ["Before", (l) => weight(l.weight_before), { numeric: true }], ["After", (l) => weight(l.weight_after), { numeric: true }]], p.lines, { caption: "Weights before and after" }),
    p.xray_before && p.xray_after ? keyFigures([["Volatility before → after", `${pct(p.xray_before.risk.volatility.value, 1, { ratio: true, sign: false })} → ${pct(p.xray_after.risk.volatility.value, 1, { ratio: true, sign: false })}`], ["Effective positions before → after", `${num(p.xray_before.effective_positions, 1)} → ${num(p.xray_after.effective_positions, 1)}`]]) : null,
    p.notes.length ? h("ul", { class: "meta" }, p.notes.map((n) => h("li", {}, n))) : null,
    !p.applied && p.trades.length ? h("button", { type: "button", onclick: apply }, "Apply these trades") : null,
  );
}
