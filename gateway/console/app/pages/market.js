import { get } from "../api.js";
import { canvasBox, lineChart } from "../charts.js";
import { clear, compact, h, load, num, pct, section, signClass, table } from "../ui.js";

const PERIODS = ["1d", "1w", "1m", "3m", "ytd", "1y"];

function movers(title, rows) {
  return section(
    title,
    table(
      [
        ["Ticker", (r) => h("a", { href: `#/stocks/${r.ticker}` }, r.ticker)],
        ["Name", (r) => r.name],
        ["Price", (r) => num(r.price), { numeric: true }],
        ["Change", (r) => h("span", { class: signClass(r.change_percent) }, pct(r.change_percent)), { numeric: true }],
        ["Volume", (r) => compact(r.volume), { numeric: true }],
      ],
      rows,
    ),
  );
}

// The sector map: one tile per sector, its area by market value, its colour by the
// chosen period's performance (the figure is written on the tile too).
function sectorMap(sectors, period) {
  const total = sectors.reduce((a, s) => a + (s.market_cap || 0), 0) || 1;
  const map = h("div", { class: "sector-map", role: "list", "aria-label": `Sector performance, ${period}` });
  for (const s of [...sectors].sort((a, b) => b.market_cap - a.market_cap)) {
    const value = s.performance_percent[period];
    const bucket = value === null || value === undefined ? "na" : Math.max(-3, Math.min(3, Math.round(value / (period === "1d" ? 0.5 : 2.5))));
    const tile = h(
      "div",
      { class: `tile heat-${bucket}`, role: "listitem", tabindex: "0" },
      h("strong", {}, s.sector),
      h("span", {}, pct(value)),
      h("small", {}, `${s.securities} stocks · ${compact(s.market_cap)}`),
    );
    tile.style.flexGrow = String(Math.max(1, Math.round((1000 * s.market_cap) / total)));
    map.append(tile);
  }
  return map;
}

export function marketPage(root) {
  const head = h("div");
  const indexBox = h("div");
  const sectorsBox = h("div");
  const moversBox = h("div", { class: "grid-3" });
  root.append(h("h1", {}, "Market overview"), head, indexBox, sectorsBox, moversBox);
  load(head, () => get("/market/overview"), (o) => {
    const b = o.breadth;
    clear(
      moversBox,
      movers("Top gainers", o.top_gainers),
      movers("Top losers", o.top_losers),
      movers("Most active", o.most_active),
    );
    return section(
      "Today",
      h(
        "dl",
        { class: "figures" },
        h("div", {}, h("dt", {}, o.index.name || "Index"), h("dd", { class: signClass(o.index.change_percent) }, num(o.index.level), " ", pct(o.index.change_percent))),
        h("div", {}, h("dt", {}, "Advancers / decliners / unchanged"), h("dd", {}, `${b.advancers} / ${b.decliners} / ${b.unchanged}`)),
        h("div", {}, h("dt", {}, "As of"), h("dd", {}, o.as_of || "—")),
        h("div", {}, h("dt", {}, "New 52-week highs / lows"), h("dd", {}, `${o.new_52w_highs.count ?? "—"} / ${o.new_52w_lows.count ?? "—"}`)),
      ),
      breadthBar(b),
    );
  }, "Market overview");
  load(indexBox, () => get("/market/index"), (index) => {
    const { box, canvas } = canvasBox(`${index.name}: price and total return since ${index.start}`);
    queueMicrotask(() =>
      lineChart(canvas, {
        labels: index.levels.map((l) => l.date),
        datasets: [
          { label: "price return", data: index.levels.map((l) => l.price_return) },
          { label: "total return", data: index.levels.map((l) => l.total_return) },
        ],
        yTitle: `level (base ${index.base})`,
      }),
    );
    return section(index.name, box, h("details", {}, h("summary", {}, "Methodology"), h("p", {}, index.methodology)));
  }, "Market index");
  let period = "1d";
  load(sectorsBox, () => get("/market/sectors"), (data) => {
    const mapBox = h("div");
    const picker = h("div", { class: "segmented", role: "group", "aria-label": "Period" });
    const draw = () => {
      clear(mapBox, sectorMap(data.sectors, period));
      for (const button of picker.children) button.setAttribute("aria-pressed", String(button.dataset.period === period));
    };
    for (const p of PERIODS) {
      picker.append(h("button", { type: "button", dataset: { period: p }, onclick: () => { period = p; draw(); } }, p));
    }
    draw();
    return section(
      "Sectors",
      picker,
      mapBox,
      h("details", {}, h("summary", {}, "Methodology"), h("p", {}, data.methodology)),
    );
  }, "Sectors");
}

function breadthBar(b) {
  const total = b.total || 1;
  const bar = h("div", { class: "breadth", role: "img", "aria-label": `${b.advancers} advancers, ${b.decliners} decliners, ${b.unchanged} unchanged` });
  for (const [key, cls] of [["advancers", "up-bg"], ["unchanged", "flat-bg"], ["decliners", "down-bg"]]) {
    const part = h("span", { class: cls });
    part.style.width = `${(100 * b[key]) / total}%`;
    bar.append(part);
  }
  return bar;
}
