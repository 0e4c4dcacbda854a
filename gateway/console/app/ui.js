// DOM helpers: elements built from data (never from HTML strings: no injection, and the
// page's CSP has no 'unsafe-inline'), number formats, errors, loading states, toasts.

import { ApiError } from "./api.js";

// h("a", {href: "#/x", class: "y"}, "text", child) -> an element
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const numberFormats = new Map();
export function num(value, digits = 2) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  if (!numberFormats.has(digits)) {
    numberFormats.set(
      digits,
      new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }),
    );
  }
  return numberFormats.get(digits).format(n);
}

export function pct(value, digits = 2, { ratio = false, sign = true } = {}) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value) * (ratio ? 100 : 1);
  if (!Number.isFinite(n)) return "—";
  return `${sign && n > 0 ? "+" : ""}${num(n, digits)}%`;
}

export function compact(value) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 }).format(
    Number(value),
  );
}

export function when(value) {
  if (!value) return "—";
  const date = new Date(typeof value === "number" ? value : String(value));
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

// A class for the sign of a change: green up, red down (with a +/- sign in the text too,
// so colour is never the only cue).
export function signClass(value) {
  const n = Number(value);
  return n > 0 ? "up" : n < 0 ? "down" : "flat";
}

export function actionBadge(action) {
  return h("span", { class: `badge action-${String(action).toLowerCase()}` }, action);
}

// The API's envelope, as the user sees it: message, code, details, request id.
export function errorBox(error, context = "") {
  const box = h("div", { class: "error", role: "alert" });
  if (error instanceof ApiError) {
    append(box, [
      h("strong", {}, context ? `${context}: ` : "", error.message),
      h(
        "p",
        { class: "meta" },
        `${error.status} ${error.code}`,
        error.requestId ? [" · request id ", h("code", { class: "request-id" }, error.requestId)] : "",
      ),
    ]);
    if (error.details && Object.keys(error.details).length) {
      box.append(h("pre", { class: "details" }, JSON.stringify(error.details, null, 2)));
    }
  } else {
    append(box, [h("strong", {}, context ? `${context}: ` : "", String(error.message || error))]);
  }
  return box;
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text);
}

// Fill `target` with a loading state, then with what `render(data)` returns, or with
// the error. Returns the data (or undefined after an error).
export async function load(target, fetcher, render, context) {
  clear(target, loading());
  target.setAttribute("aria-busy", "true");
  try {
    const data = await fetcher();
    clear(target, render(data));
    return data;
  } catch (error) {
    clear(target, errorBox(error, context));
    return undefined;
  } finally {
    target.removeAttribute("aria-busy");
  }
}

export function section(title, ...children) {
  const id = `h-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), children);
}

// A table from rows: columns are [heading, row => cell, {numeric}].
// `head`: keep the headings when there are no rows (they say what will be there).
export function table(columns, rows, { caption, empty = "Nothing to show.", head = false } = {}) {
  if (!rows.length && !head) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map(([head, , o]) => h("th", { scope: "col", class: o && o.numeric ? "num" : null }, head)))),
      h(
        "tbody",
        {},
        rows.length ? null : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)),
        rows.map((row) =>
          h("tr", {}, columns.map(([, cell, o]) => h("td", o && o.cell ? o.cell(row) : { class: o && o.numeric ? "num" : null }, cell(row)))),
        ),
      ),
    ),
  );
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("small", {}, hint) : null);
}

export function select(name, options, value) {
  return h(
    "select",
    { name },
    options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value ?? "") }, text)),
  );
}

export function keyFigures(pairs) {
  return h(
    "dl",
    { class: "figures" },
    pairs.map(([label, value, cls]) => h("div", {}, h("dt", {}, label), h("dd", { class: cls || null }, value))),
  );
}

export function toast(title, text, kind = "info") {
  const area = document.getElementById("toasts");
  const item = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "alert" ? "alert" : "status" },
    h("strong", {}, title),
    h("p", {}, text),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"),
  );
  area.append(item);
  setTimeout(() => item.remove(), 12000);
  return item;
}

export function disclosure(rec) {
  return h(
    "aside",
    { class: "disclosure", "aria-label": "Disclosure" },
    h("h3", {}, "Disclosure"),
    h("p", {}, rec.methodology_disclosure),
    h("p", { class: "meta" }, "Data sources: ", (rec.data_sources || []).join(", ")),
    h("p", { class: "meta" }, "Not investment advice. Model ", rec.model_version || "", rec.hypothetical ? " · hypothetical (back-filled) call" : ""),
  );
}
