// Charts: TradingView's lightweight-charts for prices (candles, volume, overlays), and
// Chart.js for everything else (lines, bars, doughnuts, the calibration scatter). Both
// draw on canvas and set styles through the CSSOM, which the page's CSP allows.

import {
  CandlestickSeries,
  HistogramSeries,
  LineSeries,
  createChart,
} from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";

export const ATTRIBUTION = ["Charts by ", "TradingView Lightweight Charts™", " (Copyright © 2025 TradingView, Inc., ", "https://www.tradingview.com/", ")"];

export const PALETTE = ["#1f5fa8", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d", "#4d7c0f", "#475569", "#9333ea", "#0f766e"];
const UP = "#15803d";
const DOWN = "#b91c1c";

// Simple moving average and Bollinger bands over closes (the overlay the user picks; the
// stock page also shows the API's own values of the latest ones, from /analysis).
export function sma(bars, period) {
  const out = [];
  let sum = 0;
  for (let i = 0; i < bars.length; i += 1) {
    sum += bars[i].close;
    if (i >= period) sum -= bars[i - period].close;
    if (i >= period - 1) out.push({ time: bars[i].date, value: sum / period });
  }
  return out;
}

export function bollinger(bars, period = 20, width = 2) {
  const upper = [];
  const lower = [];
  for (let i = period - 1; i < bars.length; i += 1) {
    const window = bars.slice(i - period + 1, i + 1).map((b) => b.close);
    const mean = window.reduce((a, b) => a + b, 0) / period;
    const sd = Math.sqrt(window.reduce((a, b) => a + (b - mean) ** 2, 0) / period);
    upper.push({ time: bars[i].date, value: mean + width * sd });
    lower.push({ time: bars[i].date, value: mean - width * sd });
  }
  return { upper, lower };
}

// The price chart: candles, volume underneath, and overlays ({label, data, color}).
// The library's own attribution logo injects a <style> element, which the CSP refuses;
// the page shows the attribution its licence asks for as text instead (ATTRIBUTION).
export function priceChart(container, bars, overlays = []) {
  const chart = createChart(container, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1f2937", attributionLogo: false },
    grid: { vertLines: { color: "#eef0f3" }, horzLines: { color: "#eef0f3" } },
    rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.28 } },
    timeScale: { borderColor: "#cbd5e1" },
  });
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: UP,
    downColor: DOWN,
    wickUpColor: UP,
    wickDownColor: DOWN,
    borderVisible: false,
  });
  candles.setData(bars.map((b) => ({ time: b.date, open: b.open, high: b.high, low: b.low, close: b.close })));
  const volume = chart.addSeries(HistogramSeries, { priceScaleId: "volume", priceFormat: { type: "volume" } });
  chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.78, bottom: 0 } });
  volume.setData(
    bars.map((b) => ({ time: b.date, value: b.volume, color: b.close >= b.open ? "#86efac" : "#fca5a5" })),
  );
  for (const overlay of overlays) {
    const line = chart.addSeries(LineSeries, {
      color: overlay.color,
      lineWidth: 2,
      priceLineVisible: false,
      lastValueVisible: false,
      title: overlay.label,
    });
    line.setData(overlay.data);
  }
  chart.timeScale().fitContent();
  return chart;
}

function Chart() {
  if (!window.Chart) throw new Error("Chart.js did not load");
  return window.Chart;
}

const common = {
  responsive: true,
  maintainAspectRatio: false,
  animation: false,
  plugins: { legend: { labels: { color: "#1f2937" } } },
};

export function lineChart(canvas, { labels, datasets, yTitle, percent = false }) {
  return new (Chart())(canvas, {
    type: "line",
    data: {
      labels,
      datasets: datasets.map((d, i) => ({
        borderColor: PALETTE[i % PALETTE.length],
        backgroundColor: PALETTE[i % PALETTE.length],
        pointRadius: 0,
        borderWidth: 2,
        ...d,
      })),
    },
    options: {
      ...common,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { ticks: { maxTicksLimit: 8, color: "#374151" } },
        y: {
          title: { display: Boolean(yTitle), text: yTitle, color: "#374151" },
          ticks: { color: "#374151", callback: percent ? (v) => `${v}%` : undefined },
        },
      },
    },
  });
}

export function barChart(canvas, { labels, datasets, yTitle, horizontal = false, percent = false }) {
  return new (Chart())(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: datasets.map((d, i) => ({ backgroundColor: PALETTE[i % PALETTE.length], ...d })),
    },
    options: {
      ...common,
      indexAxis: horizontal ? "y" : "x",
      scales: {
        [horizontal ? "x" : "y"]: {
          title: { display: Boolean(yTitle), text: yTitle, color: "#374151" },
          ticks: { color: "#374151", callback: percent ? (v) => `${v}%` : undefined },
        },
        [horizontal ? "y" : "x"]: { ticks: { color: "#374151", autoSkip: false } },
      },
    },
  });
}

export function doughnut(canvas, { labels, values, title }) {
  return new (Chart())(canvas, {
    type: "doughnut",
    data: {
      labels,
      datasets: [{ data: values, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]) }],
    },
    options: {
      ...common,
      plugins: {
        ...common.plugins,
        title: { display: Boolean(title), text: title, color: "#1f2937" },
        legend: { position: "bottom", labels: { color: "#1f2937", boxWidth: 12 } },
      },
    },
  });
}

// Calibration: observed hit rate against mean confidence per bucket, with the diagonal a
// perfectly calibrated model would follow.
export function calibrationChart(canvas, series) {
  return new (Chart())(canvas, {
    type: "scatter",
    data: {
      datasets: [
        {
          label: "perfect calibration",
          data: [{ x: 0, y: 0 }, { x: 1, y: 1 }],
          showLine: true,
          borderColor: "#94a3b8",
          borderDash: [6, 4],
          pointRadius: 0,
        },
        ...series.map((s, i) => ({
          label: s.label,
          data: s.points,
          showLine: true,
          borderColor: PALETTE[i % PALETTE.length],
          backgroundColor: PALETTE[i % PALETTE.length],
          pointRadius: 4,
        })),
      ],
    },
    options: {
      ...common,
      scales: {
        x: { min: 0, max: 1, title: { display: true, text: "mean confidence", color: "#374151" }, ticks: { color: "#374151" } },
        y: { min: 0, max: 1, title: { display: true, text: "observed hit rate", color: "#374151" }, ticks: { color: "#374151" } },
      },
    },
  });
}

// A canvas in a sized box, with a text alternative for screen readers.
export function canvasBox(label, className = "chart") {
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const box = document.createElement("div");
  box.className = className;
  box.append(canvas);
  return { box, canvas };
}
