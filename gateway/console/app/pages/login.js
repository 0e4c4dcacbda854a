import { login } from "../api.js";
import { errorBox, field, h } from "../ui.js";

export function loginPage(root, { next }) {
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in to Bourse"),
    field("Username", username),
    field("Password", password),
    submit,
    status,
    h("p", { class: "meta" }, "Your session is kept in this tab's memory only: reloading the page signs you out."),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    status.replaceChildren(h("p", { class: "loading", role: "status" }, "Signing in…"));
    try {
      await login(username.value, password.value);
      if (!window.location.hash.includes(next)) window.location.hash = `#/${next}`;
    } catch (error) {
      status.replaceChildren(errorBox(error, "Sign-in failed"));
      submit.disabled = false;
      password.select();
    }
  });
  root.append(form);
  username.focus();
}
