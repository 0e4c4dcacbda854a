// The console's shell: the session, the navigation, and a router over the URL fragment
// (`#/stocks/ACME`): the gateway serves one page at `/`, the views are drawn here.

import { currentUser, logout, onSessionChange } from "./api.js";
import { alerts, closeStreams } from "./live.js";
import { adminPage } from "./pages/admin.js";
import { alertsPage } from "./pages/alerts.js";
import { livePage } from "./pages/live.js";
import { loginPage } from "./pages/login.js";
import { marketPage } from "./pages/market.js";
import { portfolioPage } from "./pages/portfolio.js";
import { recommendationPage, recommendationsPage, trackRecordPage } from "./pages/recommendations.js";
import { stockPage } from "./pages/stock.js";
import { stocksPage } from "./pages/stocks.js";
import { watchlistPage, watchlistsPage } from "./pages/watchlists.js";
import { clear, h, toast } from "./ui.js";

const ROUTES = [
  [/^market$/, marketPage, "Market"],
  [/^stocks$/, stocksPage, "Stocks"],
  [/^stocks\/([A-Z0-9.-]+)$/, stockPage, "Stock"],
  [/^live$/, livePage, "Live prices"],
  [/^watchlists$/, watchlistsPage, "Watchlists"],
  [/^watchlists\/([0-9a-f-]+)$/, watchlistPage, "Watchlist"],
  [/^alerts$/, alertsPage, "Alerts"],
  [/^recommendations$/, recommendationsPage, "Recommendations"],
  [/^recommendations\/([0-9a-f-]+)$/, recommendationPage, "Recommendation"],
  [/^track-record$/, trackRecordPage, "Track record"],
  [/^portfolio$/, portfolioPage, "Portfolio"],
  [/^admin$/, adminPage, "Admin", "admin"],
];

const main = document.getElementById("main");
let cleanup = null; // what the current page must undo (sockets, charts) when left

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { path: decodeURIComponent(path), params: new URLSearchParams(query) };
}

export function navigate(path, params) {
  const query = params && [...params].length ? `?${params}` : "";
  const target = `#/${path}${query}`;
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

function render() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a page's cleanup never blocks the next page */
    }
    cleanup = null;
  }
  const user = currentUser();
  const { path, params } = parseHash();
  if (!user) {
    document.title = "Sign in · Bourse";
    cleanup = loginPage(clear(main), { next: path || "market" });
    return;
  }
  for (const [pattern, page, title, role] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    if (role && user.role !== role) break; // hidden, and the API refuses it anyway
    document.title = `${title} · Bourse`;
    markCurrent(path);
    cleanup = page(clear(main), { params, args: match.slice(1), navigate, user }) || null;
    main.focus({ preventScroll: true });
    return;
  }
  if (!path) {
    navigate("market");
    return;
  }
  document.title = "Not found · Bourse";
  clear(main, h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, `#/${path}`), ". ", h("a", { href: "#/market" }, "Go to the market overview.")));
}

function markCurrent(path) {
  const section = path.split("/")[0];
  for (const link of document.querySelectorAll("#nav a")) {
    const target = link.getAttribute("href").replace(/^#\//, "");
    if (target === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showSession(user) {
  const nav = document.getElementById("nav");
  const toggle = document.getElementById("nav-toggle");
  const box = document.getElementById("session");
  nav.hidden = !user;
  toggle.hidden = !user;
  box.hidden = !user;
  document.getElementById("who").textContent = user ? `${user.username} (${user.role})` : "";
  for (const item of document.querySelectorAll("[data-role]")) {
    item.hidden = !user || user.role !== item.dataset.role;
  }
}

// Alerts arrive on every page while signed in, as toasts.
alerts.on((message) => {
  if (message.type === "alert") toast(`Alert: ${message.ticker}`, message.message, "alert");
});

onSessionChange((user) => {
  showSession(user);
  if (user) alerts.open();
  else closeStreams();
  render();
});

document.getElementById("logout").addEventListener("click", async () => {
  await logout();
  window.location.hash = "#/market";
});

document.getElementById("nav-toggle").addEventListener("click", (event) => {
  const nav = document.getElementById("nav");
  const open = !nav.classList.contains("open");
  nav.classList.toggle("open", open);
  event.currentTarget.setAttribute("aria-expanded", String(open));
});

window.addEventListener("hashchange", render);
showSession(null);
render();
