// The playground's API key (the field at the top of every /ui page).
//
// A browser sends no credentials when it opens a page, so the server shows it only the models open to
// anonymous callers. With a key, this script asks the server for the same page again, this time with
// "Authorization: Bearer <key>", and puts that page's <main> in place of this one: the models the key may use
// appear, and the playground (playground.js) sends the key with its predictions.
//
// The key is kept in this tab's sessionStorage (gone when the tab closes; never localStorage, never a cookie)
// and is only ever sent to this page's own origin. Other scripts read it with window.mlgateApiKey.headers(url).
//
// Without a key, a user signed in to the admin needs none: when the page names the admin's token route
// (<body data-admin-token>), this script asks it (same origin, with the header X-Mlgate-Playground: 1) for a
// short-lived token of the admin session, keeps it in memory only, and uses it like a key; it asks for a new
// one before the old one expires. Logging out of the admin ends the token at once.
(function () {
  "use strict";

  const STORE = "mlgate.apiKey";
  const RENEW_MS = 60 * 1000; // a session token is renewed when it has less than this left
  const root = document.documentElement;
  let session = null; // {token, expires (ms since the epoch), username} of the admin session, or null

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

  function credential() {
    const key = get();
    if (key) return key;
    return session && session.expires > Date.now() ? session.token : "";
  }

  // Asks the admin for its session's token (when the page names the route and no key is set); null without
  // a signed-in admin session.
  async function renewSession() {
    const url = document.body && document.body.dataset.adminToken;
    if (!url || get()) return null;
    if (session && session.expires - Date.now() > RENEW_MS) return session;
    try {
      const response = await fetch(url, {
        headers: { "X-Mlgate-Playground": "1", Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      const body = response.ok ? await response.json() : { token: null };
      session = body.token ? { token: body.token, expires: Date.now() + 1000 * body.expires_in,
                               username: body.username } : null;
    } catch (err) {
      session = null; // no admin to ask: as without a session
    }
    return session;
  }

  window.mlgateApiKey = {
    present: function () { return credential() !== ""; },
    /** Whether the credential in use is the admin session's token (no key set). */
    viaSession: function () { return !get() && session !== null; },
    /** The Authorization header for a request to ``url``: only with a key or session token, to this origin. */
    headers: function (url) {
      const value = credential();
      return value && sameOrigin(url) ? { Authorization: "Bearer " + value } : {};
    },
    /** Renews the admin session's token when it is about to expire (await it before a request). */
    fresh: renewSession,
    /** The admin session ended (a 401 with its token): stop using it. */
    sessionEnded: function () {
      session = null;
      say("Your admin session has ended: sign in again, or enter an API key.", "error");
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

  // A page the server could not show without credentials, and none here to ask again with: say so.
  function notFound() {
    const box = document.getElementById("not-found-box");
    const looking = document.getElementById("looking");
    if (box) box.hidden = false;
    if (looking) looking.remove();
  }

  async function reloadWithKey() {
    root.dataset.apiKey = "pending";
    if (!get()) await renewSession();
    const key = credential();
    if (!key) { notFound(); ready(); return; }
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
      if (!get()) {
        session = null; // the admin session ended between the token and this request
        say("Your admin session has ended: sign in again, or enter an API key.", "error");
        notFound();
        ready();
        return;
      }
      if (response.status === 401) forget(); // a key the server does not know is not kept
      say(`Key not accepted (${response.status})${detail ? ": " + detail : ""}`, "error");
      notFound();
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
    if (get()) say("Using your API key", "ok");
    else say(`Signed in to the admin as ${session.username}`, "ok");
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

  // playground.js waits for the keyed page (a key, or maybe an admin session to ask).
  if (get() || (document.body && document.body.dataset.adminToken)) root.dataset.apiKey = "pending";
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
