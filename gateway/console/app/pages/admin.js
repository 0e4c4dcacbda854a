import { get, request } from "../api.js";
import { clear, errorBox, field, h, load, loading, num, select, table, when } from "../ui.js";

const ROLES = [["viewer", "viewer"], ["analyst", "analyst"], ["admin", "admin"]];

// Admin: users, API keys, CSV imports, recommendation runs, platform status. The link is
// shown to admins only; the API refuses everyone else whatever the page does.
export function adminPage(root) {
  const status = h("div");
  const users = h("div", { class: "card" });
  const keys = h("div", { class: "card" });
  const runs = h("div", { class: "card" });
  const imports = h("div", { class: "card" });
  root.append(h("h1", {}, "Admin"), status, users, keys, h("div", { class: "grid-2" }, runs, imports));
  const message = (box, error, context) => box.prepend(errorBox(error, context));

  load(status, async () => {
    const [health, market, ledger] = await Promise.all([
      fetch("/api/v1/health").then((r) => r.json()),
      get("/market/status"),
      get("/recommendations/ledger/verify"),
    ]);
    return { health, market, ledger };
  }, ({ health, market, ledger }) => h("section", { class: "card", "aria-labelledby": "status-title" },
    h("h2", { id: "status-title" }, "Platform status: ", h("span", { class: `badge state-${health.status === "ok" ? "open" : "closed"}` }, health.status)),
    table([
      ["Part", ([name]) => name],
      ["Status", ([, part]) => part.status],
      ["Checks", ([, part]) => Object.entries(part.checks || {}).map(([k, c]) => `${k} ${c.status}${c.latency_ms !== undefined ? ` (${c.latency_ms} ms)` : ""}`).join(", ")],
    ], [["gateway", health.gateway], ...Object.entries(health.services || {})]),
    h("p", {}, `Market: ${market.securities} securities (${market.storage}); feed ${market.feed && market.feed.running ? `running, ${num(market.feed.ticks_per_second, 0)} ticks/s` : "stopped"}; universe load ${market.universe_load ? market.universe_load.state : "—"}.`),
    h("p", {}, `Recommendations ledger: ${ledger.intact ? "intact" : "BROKEN"}, ${num(ledger.checked, 0)} entries checked.`),
  ), "Status");

  const showUsers = () => load(users, () => get("/users", { limit: 100 }), (list) => {
    const name = h("input", { name: "username", required: true, autocomplete: "off" });
    const password = h("input", { name: "password", type: "password", minlength: "8", required: true, autocomplete: "new-password" });
    const role = select("role", ROLES, "viewer");
    const form = h("form", { class: "inline" }, field("Username", name), field("Password", password), field("Role", role), h("button", { type: "submit" }, "Create user"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await request("POST", "/users", { json: { username: name.value, password: password.value, role: role.value } });
        showUsers();
      } catch (error) {
        message(users, error, "User not created");
      }
    });
    const change = async (user, body) => {
      try {
        await request("PATCH", `/users/${user.id}`, { json: body });
        showUsers();
      } catch (error) {
        message(users, error, "Not changed");
      }
    };
    return [h("h2", {}, "Users"), table([
      ["Username", (u) => u.username],
      ["Role", (u) => { const s = select("role", ROLES, u.role); s.setAttribute("aria-label", `Role of ${u.username}`); s.addEventListener("change", () => change(u, { role: s.value })); return s; }],
      ["State", (u) => (u.disabled ? "disabled" : "active")],
      ["Created", (u) => when(u.created_at)],
      ["", (u) => h("button", { type: "button", class: "link", onclick: () => change(u, { disabled: !u.disabled }) }, u.disabled ? "Enable" : "Disable")],
    ], list.items), form];
  }, "Users");

  const showKeys = (created) => load(keys, () => get("/api-keys"), (list) => {
    const name = h("input", { name: "name", required: true });
    const form = h("form", { class: "inline" }, field("Key name", name), h("button", { type: "submit" }, "Create key"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        showKeys(await request("POST", "/api-keys", { json: { name: name.value } }));
      } catch (error) {
        message(keys, error, "Key not created");
      }
    });
    return [h("h2", {}, "API keys"),
      created ? h("div", { class: "ok", role: "status" }, h("p", {}, "New key (shown once, copy it now):"), h("code", { class: "secret" }, created.key)) : null,
      table([
        ["Name", (k) => k.name], ["Prefix", (k) => h("code", {}, k.prefix)], ["Role", (k) => k.role], ["Scopes", (k) => k.scopes.join(", ")],
        ["Last used", (k) => when(k.last_used_at)], ["State", (k) => (k.revoked_at ? `revoked ${when(k.revoked_at)}` : "active")],
        ["", (k) => (k.revoked_at ? "" : h("button", { type: "button", class: "link danger", onclick: async () => { try { await request("DELETE", `/api-keys/${k.id}`); showKeys(); } catch (error) { message(keys, error, "Not revoked"); } } }, "Revoke"))],
      ], list.items, { empty: "No API key." }), form];
  }, "API keys");

  const showRuns = () => load(runs, () => get("/recommendations/runs", { limit: 15 }), (page) => {
    const start = h("button", { type: "button", onclick: async () => {
      start.disabled = true;
      try {
        await request("POST", "/recommendations/runs", { json: {} });
        showRuns();
      } catch (error) {
        message(runs, error, "Run not started");
        start.disabled = false;
      }
    } }, "Start a run now");
    return [h("h2", {}, "Recommendation runs"), start, table([
      ["Started", (r) => when(r.started_at)], ["Kind", (r) => r.kind + (r.hypothetical ? " (hypothetical)" : "")], ["Day", (r) => r.trading_day || "—"],
      ["Status", (r) => r.status + (r.error ? `: ${r.error}` : "")], ["Calls", (r) => num(r.called, 0), { numeric: true }], ["Changed", (r) => num(r.changed, 0), { numeric: true }],
    ], page.items, { empty: "No run yet." })];
  }, "Runs");

  const file = h("input", { type: "file", name: "file", accept: ".csv,text/csv", required: true });
  const ticker = h("input", { name: "ticker", autocapitalize: "characters" });
  const layout = select("layout", [["auto", "Detect"], ["yahoo", "Yahoo"], ["stooq", "Stooq"]], "auto");
  const result = h("div", { "aria-live": "polite" });
  const importForm = h("form", {}, h("h2", {}, "Import prices (CSV)"), field("File", file), field("Ticker", ticker, "For a single-security Yahoo file"), field("Layout", layout), h("button", { type: "submit" }, "Import"), result);
  importForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.replaceChildren(loading("Importing…"));
    try {
      const s = await request("POST", "/market/imports", { query: { ticker: ticker.value || undefined, layout: layout.value }, body: file.files[0], headers: { "Content-Type": "text/csv" } });
      clear(result, h("p", { class: "ok", role: "status" }, `${s.rows} rows: ${s.inserted} inserted, ${s.updated} updated, ${s.unchanged} unchanged, ${s.rejected} rejected.`),
        table([["Line", (r) => r.line], ["Ticker", (r) => r.ticker || "—"], ["Reason", (r) => r.reason]], s.rejected_rows.slice(0, 20), { caption: "Rejected rows", empty: "No row rejected." }));
    } catch (error) {
      clear(result, errorBox(error, "Import failed"));
    }
  });
  imports.append(importForm);
  showUsers();
  showKeys();
  showRuns();
}
