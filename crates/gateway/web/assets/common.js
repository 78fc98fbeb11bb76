"use strict";
// What every page shares: calling the two APIs, the fan's credentials in the browser,
// building DOM without HTML strings (nothing a server sends is ever parsed as markup),
// money and time in the fan's locale.
//
// Where credentials live (README "Origins"): the access token in sessionStorage (this tab
// only, gone when it closes; sent as a bearer header, so no cookie and no CSRF), the
// queue ticket in localStorage (a fan who closes the tab and comes back keeps their
// place), a booking's capability link in the booking page's address.

const bo = (() => {
  const waitroomOrigin = document.querySelector('meta[name="boxoffice-waitroom"]').content;

  /** An API refusal: the envelope's code and message, with the status and Retry-After. */
  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  async function call(origin, method, path, { body, token, headers = {} } = {}) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (token) init.headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(origin + path, init);
    } catch (cause) {
      throw new ApiError(0, "network", "We could not reach boxoffice. Check your connection; we will keep trying.");
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const error = (json && json.error) || {};
      const retryAfter = Number(response.headers.get("Retry-After")) || null;
      throw new ApiError(response.status, error.code || "http_" + response.status,
        error.message || `The server answered ${response.status}.`, retryAfter);
    }
    return json;
  }

  /** Element builder: `el("button", { class: "x", onclick: f }, "Text", child)`. */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Replaces `#main`'s content after its heading with `nodes`. */
  function render(...nodes) {
    const main = document.getElementById("main");
    const heading = main.querySelector("h1");
    main.replaceChildren(...(heading ? [heading] : []), ...nodes.flat());
  }

  function money(amountMinor, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amountMinor / 100);
    } catch (_) {
      return `${(amountMinor / 100).toFixed(2)} ${currency}`;
    }
  }

  function dateTime(iso) {
    return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" }) : "Date to be announced";
  }

  /** "m:ss" for a countdown. */
  function clock(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
  }

  /** A refusal shown where the fan looks, announced to screen readers. */
  function errorBox(error) {
    const message = error instanceof ApiError ? error.message : "Something went wrong. Please try again.";
    return el("p", { class: "error", role: "alert" }, message);
  }

  /** The path's segments after `/e/`: the event id and what follows. */
  function pathIds() {
    return location.pathname.split("/").filter(Boolean).slice(1);
  }

  const tokenKey = (eventId) => `boxoffice.token.${eventId}`;
  const ticketKey = (eventId) => `boxoffice.ticket.${eventId}`;

  return {
    ApiError,
    waitroomOrigin,
    /** The gateway, on this page's origin. */
    gateway: (method, path, options) => call("", method, path, options),
    /** The waiting room, on its own origin (CORS). */
    waitroom: (method, path, options) => call(waitroomOrigin, method, path, options),
    el,
    render,
    money,
    dateTime,
    clock,
    errorBox,
    pathIds,
    token: (eventId) => sessionStorage.getItem(tokenKey(eventId)),
    setToken: (eventId, token) => sessionStorage.setItem(tokenKey(eventId), token),
    forgetToken: (eventId) => sessionStorage.removeItem(tokenKey(eventId)),
    queueTicket: (eventId) => localStorage.getItem(ticketKey(eventId)),
    setQueueTicket: (eventId, ticket) => localStorage.setItem(ticketKey(eventId), ticket),
    forgetQueueTicket: (eventId) => localStorage.removeItem(ticketKey(eventId)),
  };
})();
