import { get } from "../api.js";
import { ATTRIBUTION, PALETTE, bollinger, priceChart, sma } from "../charts.js";
import { prices } from "../live.js";
import { actionBadge, clear, compact, disclosure, h, keyFigures, load, num, pct, section, signClass, table } from "../ui.js";

const RANGES = { "3M": 92, "1Y": 366, "3Y": 1096, "5Y": 1827, "10Y": 3653 };
const OVERLAYS = {
  sma20: (bars) => [{ label: "SMA 20", data: sma(bars, 20), color: PALETTE[0] }],
  sma50: (bars) => [{ label: "SMA 50", data: sma(bars, 50), color: PALETTE[1] }],
  sma200: (bars) => [{ label: "SMA 200", data: sma(bars, 200), color: PALETTE[3] }],
  bollinger: (bars) => {
    const bands = bollinger(bars, 20, 2);
    return [
      { label: "BB upper", data: bands.upper, color: "#64748b" },
      { label: "BB lower", data: bands.lower, color: "#64748b" },
    ];
  },
};

function isoDaysAgo(days) {
  return new Date(Date.now() - days * 86400000).toISOString().slice(0, 10);
}

// The stock page: key figures (live), the price chart with its choices, the analysis, and
// the stock's latest recommendation with its thesis, risks and disclosures.
export function stockPage(root, { args }) {
  const ticker = args[0];
  const state = { interval: "daily", adjusted: true, range: "1Y", overlays: new Set(["sma20", "sma50"]) };
  const headBox = h("div");
  const chartCard = h("section", { class: "card", "aria-labelledby": "price-title" });
  const analysisBox = h("div");
  const recBox = h("div");
  root.append(h("h1", {}, ticker), headBox, chartCard, h("div", { class: "grid-2" }, analysisBox, recBox));

  let chart = null;
  const figures = h("div");
  load(headBox, () => get(`/stocks/${ticker}`), (s) => {
    root.querySelector("h1").textContent = `${s.ticker} · ${s.name}`;
    const render = (live) => clear(figures, keyFigures([
      ["Last", h("span", { class: "live-price", dataset: { ticker: s.ticker } }, num(live.price ?? s.last_price)), null],
      ["Change", pct(live.change_percent ?? s.change_percent), signClass(live.change_percent ?? s.change_percent)],
      ["Volume", compact(live.volume ?? s.volume)],
      ["Day range", `${num(s.day_low)} – ${num(s.day_high)}`],
      ["Previous close", num(s.previous_close)],
      ["Market cap", compact(s.market_cap)],
      ["Sector", `${s.sector} · ${s.industry}`],
      ["Exchange", `${s.exchange} · ${s.currency}`],
      ["Data source", s.data_source],
    ]));
    render({});
    return section("Key figures", figures);
  }, "Stock");
  // Live quotes for this ticker while the page is open.
  const stop = prices.watch([ticker]);
  const off = prices.on((m) => {
    if (m.type !== "quote" || m.ticker !== ticker) return;
    const price = figures.querySelector(".live-price");
    if (price) price.textContent = num(m.price);
  });

  const controls = h("div", { class: "chart-controls" });
  const chartBox = h("div", { class: "price-chart", role: "img", "aria-label": `${ticker} price chart` });
  const chartStatus = h("div", { "aria-live": "polite" });
  const [before, name, middle, site, after] = ATTRIBUTION;
  const credit = h("p", { class: "meta attribution" }, before, name, middle, h("a", { href: site, rel: "noopener" }, site), after);
  chartCard.append(h("h2", { id: "price-title" }, "Price"), controls, chartStatus, chartBox, credit);
  const group = (label, options, current, set) => {
    const g = h("div", { class: "segmented", role: "group", "aria-label": label });
    for (const [value, text] of options) {
      g.append(h("button", { type: "button", "aria-pressed": String(current() === value), onclick: () => { set(value); draw(); } }, text));
    }
    return g;
  };
  const drawControls = () => clear(
    controls,
    group("Interval", [["daily", "Daily"], ["weekly", "Weekly"], ["monthly", "Monthly"]], () => state.interval, (v) => { state.interval = v; }),
    group("Prices", [[true, "Adjusted"], [false, "Raw"]], () => state.adjusted, (v) => { state.adjusted = v; }),
    group("Range", Object.keys(RANGES).map((r) => [r, r]), () => state.range, (v) => { state.range = v; }),
    h("fieldset", { class: "overlays" }, h("legend", {}, "Overlays"),
      Object.keys(OVERLAYS).map((key) => h("label", {},
        h("input", { type: "checkbox", checked: state.overlays.has(key), onchange: (e) => { if (e.target.checked) state.overlays.add(key); else state.overlays.delete(key); draw(); } }),
        ` ${key === "bollinger" ? "Bollinger (20, 2)" : key.toUpperCase().replace("SMA", "SMA ")}`))),
  );
  const draw = () => {
    drawControls();
    load(chartStatus, () => get(`/stocks/${ticker}/prices`, {
      interval: state.interval,
      adjusted: state.adjusted,
      start: isoDaysAgo(RANGES[state.range]),
    }), (history) => {
      if (chart) chart.remove();
      chartBox.replaceChildren();
      const bars = history.bars;
      const overlays = [...state.overlays].flatMap((key) => OVERLAYS[key](bars));
      chart = priceChart(chartBox, bars, overlays);
      const last = bars[bars.length - 1];
      return h("p", { class: "meta" }, `${bars.length} ${state.interval} bars, ${history.adjusted ? "split- and dividend-adjusted" : "as traded (raw)"}, ${history.start} to ${history.end}`, last ? `; last close ${num(last.close)}` : "", `. Source: ${history.data_source}. Overlays are computed here from these bars.`);
    }, "Prices");
  };
  draw();

  // One call gives the analysis and the model's view (include_ml): the stock's call in the
  // latest live recommendation run, with its thesis, risks and disclosures.
  const analysis = get(`/stocks/${ticker}/analysis`, { include_ml: true });
  load(analysisBox, () => analysis, (a) => section(
    "Analysis",
    keyFigures([
      ...Object.entries(a.returns).map(([k, v]) => [`Return ${k}`, pct(v, 2, { ratio: true }), signClass(v)]),
      ["RSI (14)", num(a.rsi.value)],
      ["MACD / signal", `${num(a.macd.macd, 3)} / ${num(a.macd.signal, 3)}`],
      ["Bollinger (20, 2)", `${num(a.bollinger_bands.lower)} – ${num(a.bollinger_bands.upper)}`],
      ["ATR (14)", num(a.atr.value)],
      ["Volatility (1y, ann.)", pct(a.volatility.value, 1, { ratio: true, sign: false })],
      ["Max drawdown (1y)", pct(a.max_drawdown.value, 1, { ratio: true })],
      ["Beta", num(a.beta.value)],
      ["Sharpe / Sortino", `${num(a.sharpe_ratio.value)} / ${num(a.sortino_ratio.value)}`],
      ["52-week range", `${num(a.range_52w.low)} – ${num(a.range_52w.high)}`],
      ["Relative strength (percentile)", num(a.relative_strength.universe_percentile, 0)],
    ]),
    table(
      [["Average", (m) => `${m.type} ${m.period}`], ["Value", (m) => num(m.value), { numeric: true }]],
      a.moving_averages,
      { caption: "Moving averages (latest)" },
    ),
    h("details", {}, h("summary", {}, "How these are computed"), h("p", {}, a.history.note)),
  ), "Analysis");

  load(recBox, () => analysis, (a) => {
    const rec = a.ml;
    if (!rec) return section("Recommendation", h("p", { class: "empty" }, a.ml_reason || "No call on this stock."));
    return section(
      "Recommendation",
      h("p", { class: "call" }, actionBadge(rec.action), ` confidence ${pct(rec.confidence, 0, { ratio: true, sign: false })}`, rec.target_price ? ` · target ${num(rec.target_price)}` : "", ` · as of ${rec.as_of}`),
      h("p", { class: "thesis" }, rec.thesis),
      h("h3", {}, "Risk factors"),
      rec.risk_factors.length ? h("ul", {}, rec.risk_factors.map((r) => h("li", {}, r))) : h("p", {}, "None named."),
      h("p", {}, h("a", { href: `#/recommendations/${rec.recommendation_id}` }, "Factors and replay →")),
      disclosure(rec),
    );
  }, "Recommendation");

  return () => {
    stop();
    off();
    if (chart) chart.remove();
  };
}
