// The playground's API key (the field at the top of every /ui page).
//
// A browser sends no credentials when it opens a page, so the server shows it only the models open to
// anonymous callers. With a key, this script asks the server for the same page again, this time with
// "Authorization: Bearer <key>", and puts that page's <main> in place of this one: the models the key may use
// appear, and the playground (playground.js) sends the key with its predictions.
//
// The key is kept in this tab's sessionStorage (gone when the tab closes; never localStorage, never a cookie)
// and is only ever sent to this page's own origin. Other scripts read it with window.mlgateApiKey.headers(url).
(function () {
  "use strict";

  const STORE = "mlgate.apiKey";
  const root = document.documentElement;

  function get() {
    try {
      return window.sessionStorage.getItem(STORE) || "";
    } catch (err) {
      return ""; // storage disabled: no key
    }
  }

  function set(value) {
    try {
      if (value) window.sessionStorage.setItem(STORE, value);
      else window.sessionStorage.removeItem(STORE);
    } catch (err) {
      // storage disabled: the key cannot be kept
    }
  }

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (err) {
      return false;
    }
  }

  window.mlgateApiKey = {
    present: function () { return get() !== ""; },
    /** The Authorization header for a request to ``url``: only when a key is set and ``url`` is this origin. */
    headers: function (url) {
      const key = get();
      return key && sameOrigin(url) ? { Authorization: "Bearer " + key } : {};
    },
  };

  function say(text, kind) {
    const line = document.getElementById("api-key-state");
    if (!line) return;
    line.textContent = text;
    line.className = kind || "";
  }

  function ready() {
    root.dataset.apiKey = "ready";
    document.dispatchEvent(new Event("mlgate:page"));
  }

  async function reloadWithKey() {
    const key = get();
    if (!key) { ready(); return; }
    root.dataset.apiKey = "pending";
    let response;
    try {
      response = await fetch(window.location.href, {
        headers: { Authorization: "Bearer " + key, Accept: "text/html" },
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (err) {
      say("The server did not answer: " + err.message, "error");
      ready();
      return;
    }
    const type = response.headers.get("content-type") || "";
    if (!type.startsWith("text/html")) {
      let detail = "";
      try { detail = (await response.json()).error || ""; } catch (err) { detail = ""; }
      if (response.status === 401) forget(); // a key the server does not know is not kept
      say(`Key not accepted (${response.status})${detail ? ": " + detail : ""}`, "error");
      ready();
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const main = page.querySelector("main");
    if (main) {
      document.querySelector("main").replaceChildren(...Array.from(main.childNodes, (n) => document.importNode(n, true)));
      document.title = page.title;
    }
    // Scripts the keyed page needs that this one did not load (the playground's, on a page that was "not found").
    for (const script of page.querySelectorAll("head script[src]")) {
      const src = script.getAttribute("src");
      if (sameOrigin(src) && !document.querySelector(`script[src="${CSS.escape(src)}"]`)) {
        const tag = document.createElement("script");
        tag.src = src;
        document.head.appendChild(tag);
      }
    }
    say("Using your API key", "ok");
    ready();
  }

  function forget() {
    set("");
    const field = document.getElementById("api-key");
    if (field) {
      field.value = "";
      field.placeholder = "mlg_…";
    }
  }

  function start() {
    const form = document.getElementById("api-key-form");
    const field = document.getElementById("api-key");
    if (form && field) {
      if (get()) field.placeholder = "key set for this tab";
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const value = field.value.trim();
        if (!value) return;
        set(value);
        field.value = "";
        field.placeholder = "key set for this tab";
        reloadWithKey();
      });
      document.getElementById("api-key-forget").addEventListener("click", () => {
        forget();
        say("Key forgotten: requests from this page go without one.", "");
      });
    }
    reloadWithKey();
  }

  if (get()) root.dataset.apiKey = "pending"; // playground.js waits for the keyed page
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
