import { get } from "../api.js";
import { barChart, calibrationChart, canvasBox } from "../charts.js";
import { actionBadge, clear, disclosure, errorBox, field, h, keyFigures, load, loading, num, pct, section, select, table } from "../ui.js";

const SECTORS = ["", "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials", "Health Care", "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities"];
const FILTERS = ["action", "sector", "min_confidence", "ticker", "sort"];

// Today's list: the latest run's calls, with the API's filters and cursor paging; the
// run's disclosure stays on the page whatever the filters.
export function recommendationsPage(root, { params, navigate }) {
  const inputs = {
    action: select("action", [["", "Any action"], ["BUY", "BUY"], ["HOLD", "HOLD"], ["SELL", "SELL"]], params.get("action")),
    sector: select("sector", SECTORS.map((s) => [s, s || "Any sector"]), params.get("sector")),
    min_confidence: h("input", { name: "min_confidence", type: "number", min: "0", max: "1", step: "0.05", value: params.get("min_confidence") || "" }),
    ticker: h("input", { name: "ticker", value: params.get("ticker") || "", autocapitalize: "characters" }),
    sort: select("sort", [["score", "Score"], ["confidence", "Confidence"]], params.get("sort") || "score"),
  };
  const form = h("form", { class: "card filters", role: "search", "aria-label": "Filter recommendations" },
    field("Action", inputs.action), field("Sector", inputs.sector), field("Min confidence", inputs.min_confidence), field("Ticker", inputs.ticker), field("Sort by", inputs.sort),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) if (inputs[name].value) next.set(name, inputs[name].value);
    navigate("recommendations", next);
  });
  const results = h("div", { class: "card", "aria-live": "polite" });
  const disclosureBox = h("div");
  root.append(h("h1", {}, "Recommendations"), h("p", {}, h("a", { href: "#/track-record" }, "Track record of every published call →")), form, results, disclosureBox);
  const query = { limit: 25 };
  for (const name of FILTERS) if (params.get(name)) query[name] = params.get(name);
  const cursors = [null];
  const show = async () => {
    clear(results, loading("Loading recommendations…"));
    try {
      const page = await get("/recommendations", { ...query, cursor: cursors[cursors.length - 1] });
      clear(results,
        h("p", { class: "meta" }, page.run_id ? `Run ${page.run_id} · as of ${page.as_of}` : "No run has completed yet."),
        table([
          ["Ticker", (r) => h("a", { href: `#/stocks/${r.ticker}` }, r.ticker)],
          ["Call", (r) => actionBadge(r.action)],
          ["Confidence", (r) => pct(r.confidence, 0, { ratio: true, sign: false }), { numeric: true }],
          ["Score", (r) => num(r.score), { numeric: true }],
          ["Price at call", (r) => num(r.price_at_call), { numeric: true }],
          ["Target", (r) => num(r.target_price), { numeric: true }],
          ["Sector", (r) => r.sector || "—"],
          ["", (r) => h("a", { href: `#/recommendations/${r.id}`, "aria-label": `Details of the ${r.ticker} call` }, "Details")],
        ], page.items, { caption: `Page ${cursors.length}`, empty: "No call matches these filters." }),
        h("nav", { class: "pager", "aria-label": "Pages" },
          h("button", { type: "button", class: "secondary", disabled: cursors.length === 1, onclick: () => { cursors.pop(); show(); } }, "← Previous"),
          h("button", { type: "button", class: "secondary", disabled: !page.next_cursor, onclick: () => { cursors.push(page.next_cursor); show(); } }, "Next →")),
      );
      if (page.items[0]) clear(disclosureBox, disclosure(page.items[0]));
    } catch (error) {
      clear(results, errorBox(error, "Recommendations"));
    }
  };
  show();
}

// One call: thesis, risks, its factors (z-scores and contributions), and its replay (the
// model run again on the call's recorded inputs must give the same call).
export function recommendationPage(root, { args }) {
  const id = args[0];
  const body = h("div");
  root.append(h("h1", {}, "Recommendation"), body);
  load(body, () => get(`/recommendations/${id}`), (rec) => {
    root.querySelector("h1").textContent = `${rec.ticker}: ${rec.action}`;
    const { box, canvas } = canvasBox(`Factor contributions of the ${rec.ticker} call`);
    queueMicrotask(() => barChart(canvas, {
      labels: rec.factors.map((f) => f.key),
      datasets: [{ label: "contribution to the score", data: rec.factors.map((f) => f.contribution) }],
      horizontal: true,
    }));
    const replayBox = h("div", { "aria-live": "polite" });
    const replay = h("button", { type: "button", onclick: () => load(replayBox, () => get(`/recommendations/${id}/replay`), (r) => h("div", { class: r.identical ? "ok" : "error" },
      h("p", {}, r.identical ? "Replayed: the model gives the identical call from the recorded inputs." : "Replay differs from the published call."),
      h("p", { class: "meta" }, `inputs hash ${r.inputs_hash_matches ? "matches" : "does not match"}`),
      r.differences.length ? h("ul", {}, r.differences.map((d) => h("li", {}, d))) : null), "Replay") }, "Replay this call");
    return [
      section("The call",
        h("p", { class: "call" }, actionBadge(rec.action), ` confidence ${pct(rec.confidence, 0, { ratio: true, sign: false })} · score ${num(rec.score)}`, rec.hypothetical ? " · hypothetical" : " · live"),
        keyFigures([
          ["As of", rec.as_of], ["Price at call", num(rec.price_at_call)], ["Target", num(rec.target_price)],
          ["Horizon", `${rec.horizon_days} sessions`], ["Model", rec.model_version], ["Run", rec.run_id],
          ["Ledger", `#${rec.ledger_seq}`], ["Inputs hash", h("code", {}, rec.inputs_hash.slice(0, 16))],
        ]),
        h("p", { class: "thesis" }, rec.thesis),
        h("h3", {}, "Risk factors"),
        rec.risk_factors.length ? h("ul", {}, rec.risk_factors.map((r) => h("li", {}, r))) : h("p", {}, "None named.")),
      section("Factors", box, table([
        ["Factor", (f) => f.key], ["Value", (f) => num(f.value, 4), { numeric: true }], ["z-score", (f) => num(f.z_score), { numeric: true }],
        ["Contribution", (f) => num(f.contribution, 3), { numeric: true }], ["Percentile", (f) => pct(f.percentile, 0, { ratio: true, sign: false }), { numeric: true }],
      ], rec.factors)),
      section("Replay", replay, replayBox),
      disclosure(rec),
    ];
  }, "Recommendation");
}

function recordPart(title, part, kind) {
  if (!part || !part.calls) {
    return section(title, h("p", { class: "empty" }, `No ${kind} call has been judged yet (a call is judged once its horizon has passed).`));
  }
  const { box, canvas } = canvasBox(`Calibration of ${kind} calls: observed hit rate against mean confidence`, "chart square");
  const points = (part.reliability || []).filter((r) => r.calls).map((r) => ({ x: r.mean_confidence, y: r.observed_hit_rate }));
  queueMicrotask(() => calibrationChart(canvas, [{ label: `${kind} calls`, points }]));
  const ic = part.information_coefficient || {};
  return section(title,
    keyFigures([
      ["Calls judged", num(part.calls, 0)], ["Hit rate", pct(part.hit_rate, 1, { ratio: true, sign: false })],
      ["Mean excess return", pct(part.mean_excess_return, 2, { ratio: true })], ["Brier score", num(part.brier_score, 4)],
      ["IC mean (t-stat)", `${num(ic.mean, 4)} (${num(ic.t_stat)})`], ["Period", `${part.first_as_of || "—"} to ${part.last_as_of || "—"}`],
    ]),
    table([
      ["Action", ([a]) => actionBadge(a)], ["Calls", ([, v]) => num(v.calls, 0), { numeric: true }],
      ["Hit rate", ([, v]) => pct(v.hit_rate, 1, { ratio: true, sign: false }), { numeric: true }],
      ["Mean return", ([, v]) => pct(v.mean_return, 2, { ratio: true }), { numeric: true }],
      ["Mean excess", ([, v]) => pct(v.mean_excess_return, 2, { ratio: true }), { numeric: true }],
    ], Object.entries(part.by_action || {}), { caption: "By action" }),
    h("h3", {}, "Calibration"), box,
    table([
      ["Confidence", (r) => r.bucket], ["Calls", (r) => num(r.calls, 0), { numeric: true }],
      ["Mean confidence", (r) => num(r.mean_confidence, 3), { numeric: true }],
      ["Observed hit rate", (r) => num(r.observed_hit_rate, 3), { numeric: true }],
    ], part.reliability || [], { caption: "Reliability table" }),
  );
}

// The track record: live calls and hypothetical (back-filled) calls always apart.
export function trackRecordPage(root) {
  const body = h("div");
  root.append(h("h1", {}, "Track record"), body);
  load(body, () => get("/recommendations/track-record"), (t) => [
    h("p", {}, `Benchmark: ${t.benchmark}. Hits: `, Object.entries(t.hit_rules).map(([a, rule]) => `${a} when ${rule}`).join("; "), "."),
    h("div", { class: "grid-2" },
      recordPart("Live calls", t.live, "live"),
      recordPart("Hypothetical calls (back-filled, never published live)", t.hypothetical, "hypothetical")),
    h("aside", { class: "disclosure", "aria-label": "Methodology" }, h("h3", {}, "Methodology"), h("p", {}, t.methodology), h("p", { class: "meta" }, "Past performance does not guarantee future results. Not investment advice.")),
  ], "Track record");
}
