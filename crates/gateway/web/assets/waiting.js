"use strict";
// The waiting page: joins the event's line in the waiting room (or resumes with the
// ticket this browser kept), follows the fan's standing as the waiting room pushes it
// (Server-Sent Events; polling when streams are refused or keep failing), and moves on
// to the seat picker once the fan is let in.
//
// Screen readers: `#standing` is a polite live region, but the position, the ETA and the
// progress bar sit in a part marked `aria-live="off"`, because near the front they change
// every half second and announcing each change would drown the fan in numbers. A
// visually hidden sentence inside the region says the position and the wait instead, at
// most every ten seconds; changes of state (paused, sold out, your turn) are announced
// as they happen.

const eventId = bo.pathIds()[0];
const queuePath = `/v1/events/${eventId}/queue`;
/** The fan's distance from the front when first seen waiting, for the progress bar. */
const aheadKey = `boxoffice.ahead.${eventId}`;
const SUMMARY_EVERY_MS = 10_000;
/** A stream that stayed open this long before failing was working: start counting anew. */
const STREAM_HEALTHY_MS = 60_000;
const STREAM_FAILURES_BEFORE_POLLING = 3;
const POW_ATTEMPTS = 3;

let ticket = bo.queueTicket(eventId);
let room = null;
let powNeeded = false;
let powAttempts = 0;
let stream = null;
let streamOpenedAt = 0;
let streamFailures = 0;
let streaming = typeof EventSource === "function";
let timer = null;
let troubles = 0;
let finished = false;
let countdownTimer = null;
let summaryShownAt = 0;
let summaryTimer = null;
let pendingSummary = "";

const parts = {};

function layout() {
  parts.state = bo.el("p", { class: "standing-state", id: "standing-state" }, "Finding your place in line…");
  parts.position = bo.el("strong", { id: "position" }, "–");
  parts.lineLength = bo.el("span", {});
  parts.eta = bo.el("p", { class: "standing-eta" });
  parts.progress = bo.el("progress", { id: "progress", max: "1", value: "0" });
  parts.progressWords = bo.el("p", { class: "muted" });
  parts.details = bo.el("div", { class: "standing-details", "aria-live": "off", hidden: true },
    bo.el("p", { class: "standing-position" }, "You are number ", parts.position, parts.lineLength, "."),
    parts.eta,
    bo.el("label", { for: "progress" }, "Fans ahead of you who have been let in"),
    parts.progress,
    parts.progressWords);
  parts.summary = bo.el("p", { class: "visually-hidden" });
  parts.actions = bo.el("div", { class: "standing-actions" });
  parts.keepOpen = bo.el("p", { class: "keep-open" }, "Keep this page open; you keep your place if you reload.");
  parts.standing = bo.el("section", { id: "standing", "aria-live": "polite", "aria-labelledby": "standing-heading" },
    bo.el("h2", { id: "standing-heading" }, "Your place in line"),
    parts.state,
    parts.details,
    parts.summary,
    parts.actions,
    parts.keepOpen);

  parts.opensAt = bo.el("time", {});
  parts.countdown = bo.el("span", { role: "timer", class: "countdown" });
  parts.seedHash = bo.el("code", { class: "seed-hash" }, "…");
  parts.preQueue = bo.el("section", { class: "card prequeue", "aria-labelledby": "prequeue-heading", hidden: true },
    bo.el("h2", { id: "prequeue-heading" }, "Before the sale opens"),
    bo.el("p", {}, "The sale opens ", parts.opensAt, ". ", parts.countdown),
    bo.el("p", {}, "Everyone who arrives before opening is put in random order at opening, so arriving early gains nothing and arriving a minute before loses nothing."),
    bo.el("p", {}, "The order comes from a secret seed. Its SHA-256 fingerprint, published now: ", parts.seedHash),
    bo.el("p", { class: "muted" }, "After the sale the seed itself is published: anyone can check that its SHA-256 (for example with ",
      bo.el("code", {}, "printf %s SEED | sha256sum"), ") equals this fingerprint, which proves the order was fixed before anyone joined."));

  parts.connection = bo.el("p", { role: "status", class: "connection" });
  parts.eventWhen = bo.el("p", { class: "muted" });
  bo.render(parts.eventWhen, parts.connection, parts.standing, parts.preQueue);
}

function setState(words) {
  if (parts.state.textContent !== words) parts.state.textContent = words;
}

function setActions(...nodes) {
  parts.actions.replaceChildren(...nodes);
}

/** Puts the position and wait into the announced sentence, at most every ten seconds. */
function announceStanding(sentence) {
  pendingSummary = sentence;
  if (summaryTimer) return;
  const wait = Math.max(0, summaryShownAt + SUMMARY_EVERY_MS - Date.now());
  summaryTimer = setTimeout(() => {
    summaryTimer = null;
    summaryShownAt = Date.now();
    if (parts.summary.textContent !== pendingSummary) parts.summary.textContent = pendingSummary;
  }, wait);
}

/** Hides the position, the wait and the progress, with the sentence announcing them. */
function hidePosition() {
  parts.details.hidden = true;
  clearTimeout(summaryTimer);
  summaryTimer = null;
  parts.summary.textContent = "";
}

function later(step, seconds) {
  clearTimeout(timer);
  timer = setTimeout(step, seconds * 1000);
}

function stopFollowing() {
  clearTimeout(timer);
  if (stream) {
    stream.close();
    stream = null;
  }
}

function keepTicket(view) {
  if (!view.ticket) return;
  ticket = view.ticket;
  bo.setQueueTicket(eventId, ticket);
}

function forgetTicket() {
  ticket = null;
  bo.forgetQueueTicket(eventId);
  localStorage.removeItem(aheadKey);
}

function calm() {
  troubles = 0;
  parts.connection.textContent = "";
}

/** A failure worth retrying (the network, a busy or unreachable waiting room). */
function retryable(error) {
  return error.status === 0 || error.status === 408 || error.status === 429 || error.status >= 500 ||
    error.code === "unavailable" || error.code === "too_many_streams";
}

function retryLater(error, step) {
  troubles += 1;
  const seconds = error.retryAfter || Math.min(30, 2 ** (troubles - 1));
  parts.connection.textContent = `${error.message} Trying again in ${seconds} ${seconds === 1 ? "second" : "seconds"}; you keep your place.`;
  later(step, seconds);
}

function eta(seconds) {
  if (seconds === null || seconds === undefined) return null;
  if (seconds < 60) return "less than a minute";
  const low = Math.max(1, Math.floor((seconds * 0.8) / 60));
  const high = Math.max(low + 1, Math.ceil((seconds * 1.25) / 60));
  return `${low} to ${high} minutes`;
}

function stateWords(view) {
  if (view.event_state === "closed") return "The sale is closed: nobody more is let in.";
  if (view.event_state === "paused") return "The sale is paused for now. You keep your place; the line moves again when it resumes.";
  if (view.sale_state === "sold_out") return "Sold out: every place has been sold. You keep your place in case some come back.";
  if (view.sale_state === "all_held") return "All remaining places are in someone's basket; some may come back — keep your place.";
  if (view.status === "pre_queue") return "You are in the line. The sale has not opened yet: at opening everyone here is put in random order.";
  if (view.status === "admitted") return "You are being let in…";
  return "You are in the line. We let you in as your turn comes.";
}

/** How many of those ahead of the fan when first seen waiting have been let in since. */
function progressOf(view) {
  let first = null;
  try {
    first = JSON.parse(localStorage.getItem(aheadKey));
  } catch (_) {
    first = null;
  }
  if (!first || first.fan !== view.fan_id) {
    first = { fan: view.fan_id, ahead: view.position - 1 };
    localStorage.setItem(aheadKey, JSON.stringify(first));
  }
  const letIn = Math.min(first.ahead, Math.max(0, first.ahead - (view.position - 1)));
  return { ahead: first.ahead, letIn };
}

function progressWords(ahead, letIn) {
  if (ahead === 0) return "Nobody was ahead of you when you joined.";
  if (ahead === 1) return letIn ? "The fan ahead of you when you joined has been let in." : "The fan ahead of you when you joined has not been let in yet.";
  return `${letIn} of the ${ahead} fans ahead of you when you joined have been let in.`;
}

function showPosition(view) {
  if (view.status !== "waiting" || typeof view.position !== "number") {
    hidePosition();
    return;
  }
  parts.details.hidden = false;
  parts.position.textContent = String(view.position);
  parts.lineLength.textContent = ` of ${view.queue_length} in line`;
  // Nobody is let in while every place is sold or in a basket, whatever the rate says.
  const moving = view.event_state === "running" && !["sold_out", "all_held"].includes(view.sale_state);
  const wait = moving ? eta(view.eta_seconds) : null;
  parts.eta.textContent = wait ? `Estimated wait: ${wait}.` : "We cannot estimate your wait right now.";
  const { ahead, letIn } = progressOf(view);
  parts.progress.max = Math.max(ahead, 1);
  parts.progress.value = ahead === 0 ? 1 : letIn;
  parts.progressWords.textContent = progressWords(ahead, letIn);
  announceStanding(`You are number ${view.position} in line.${wait ? ` Estimated wait: ${wait}.` : ""}`);
}

function countdownWords(opensAt) {
  const seconds = Math.ceil((opensAt - Date.now()) / 1000);
  if (seconds <= 0) return "Opening now…";
  const hours = Math.floor(seconds / 3600);
  if (hours >= 24) return `Opens in ${Math.floor(hours / 24)} d ${hours % 24} h.`;
  if (hours >= 1) return `Opens in ${hours} h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")} min.`;
  return `Opens in ${bo.clock(seconds)}.`;
}

async function showPreQueue(view) {
  const opensAt = view.opens_at || (room && room.opens_at);
  parts.preQueue.hidden = false;
  parts.opensAt.textContent = bo.dateTime(opensAt);
  if (opensAt) parts.opensAt.setAttribute("datetime", opensAt);
  clearInterval(countdownTimer);
  if (opensAt) {
    const tick = () => { parts.countdown.textContent = countdownWords(new Date(opensAt).getTime()); };
    tick();
    countdownTimer = setInterval(tick, 1000);
  }
  if (!room) {
    try {
      room = await bo.waitroom("GET", `/v1/events/${eventId}/waitroom`);
    } catch (_) {
      parts.seedHash.textContent = "(could not be loaded; reload the page to see it)";
      return;
    }
  }
  parts.seedHash.textContent = room.seed_sha256;
}

function hidePreQueue() {
  parts.preQueue.hidden = true;
  clearInterval(countdownTimer);
}

function showWaitlist(view) {
  if (view.sale_state === "sold_out" && view.waitlist_token) {
    bo.setToken(eventId, view.waitlist_token);
    if (!parts.actions.querySelector(".join-waitlist")) {
      setActions(bo.el("p", {}, "This show has a waitlist: places that come back are offered to it in turn. ",
        bo.el("a", { class: "join-waitlist", href: `/e/${eventId}/seats` }, "Join the waitlist")));
    }
  } else if (parts.actions.querySelector(".join-waitlist")) {
    setActions();
  }
}

function admitted(view) {
  finished = true;
  stopFollowing();
  hidePreQueue();
  bo.setToken(eventId, view.access_token);
  forgetTicket();
  hidePosition();
  setState("It is your turn! Taking you to choose your seats…");
  location.assign(`/e/${eventId}/seats`);
}

function show(view) {
  keepTicket(view);
  if (view.status === "admitted" && view.access_token) {
    admitted(view);
    return;
  }
  if (view.status === "pre_queue") showPreQueue(view);
  else hidePreQueue();
  showPosition(view);
  showWaitlist(view);
  setState(stateWords(view));
  follow(view);
}

/** Seconds until the next poll: as the waiting room asks, and soon after the opening. */
function pollDelay(view) {
  let seconds = view.poll_after_secs || 2;
  const opensAt = view.status === "pre_queue" && view.opens_at ? new Date(view.opens_at).getTime() : null;
  if (opensAt) seconds = Math.min(seconds, Math.max(1, (opensAt - Date.now()) / 1000 + Math.random() * 2));
  return seconds;
}

function follow(view) {
  if (finished) return;
  if (!streaming) later(poll, pollDelay(view));
  else if (!stream) later(openStream, streamFailures ? Math.min(30, 2 ** streamFailures) : 0);
}

function openStream() {
  const source = new EventSource(`${bo.waitroomOrigin}${queuePath}/${encodeURIComponent(ticket)}/stream`);
  stream = source;
  streamOpenedAt = Date.now();
  source.addEventListener("status", (message) => {
    if (stream !== source) return;
    calm();
    show(JSON.parse(message.data));
  });
  // Both the waiting room's `error` events (a refusal, with the error envelope) and the
  // browser's own (the connection failed or ended) arrive here.
  source.addEventListener("error", (event) => {
    if (stream !== source) return;
    source.close();
    stream = null;
    if (event.data) {
      let refusal = {};
      try {
        refusal = JSON.parse(event.data).error || {};
      } catch (_) {
        refusal = {};
      }
      refused(new bo.ApiError(null, refusal.code, refusal.message || "The waiting room refused."), poll);
      return;
    }
    if (Date.now() - streamOpenedAt > STREAM_HEALTHY_MS) streamFailures = 0;
    streamFailures += 1;
    if (streamFailures >= STREAM_FAILURES_BEFORE_POLLING) streaming = false;
    // A poll says why (an expired ticket, a busy room) and brings the latest ticket.
    poll();
  });
}

async function poll() {
  try {
    const view = await bo.waitroom("GET", `${queuePath}/${encodeURIComponent(ticket)}`);
    calm();
    show(view);
  } catch (error) {
    refused(error, poll);
  }
}

function fromHex(hex) {
  return new Uint8Array(hex.match(/../g).map((pair) => parseInt(pair, 16)));
}

function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * ALTCHA Proof-of-Work v2 (README "Proof of work at the door"): the counter whose
 * PBKDF2 key (password: the nonce's bytes then the counter as 4 big-endian bytes)
 * starts with the challenge's key prefix.
 */
async function solve(challenge) {
  const parameters = challenge.parameters;
  const hash = { "PBKDF2/SHA-256": "SHA-256", "PBKDF2/SHA-384": "SHA-384", "PBKDF2/SHA-512": "SHA-512" }[
    String(parameters.algorithm).toUpperCase()];
  if (!hash) throw new bo.ApiError(400, "pow_unsupported", "This page cannot solve the waiting room's check. Please reload the page.");
  const nonce = fromHex(parameters.nonce);
  const salt = fromHex(parameters.salt);
  const prefix = parameters.keyPrefix.toLowerCase();
  const password = new Uint8Array(nonce.length + 4);
  password.set(nonce);
  const counterBytes = new DataView(password.buffer, nonce.length);
  const expiresAt = parameters.expiresAt ? parameters.expiresAt * 1000 : Infinity;
  for (let counter = 0; counter <= 0xffffffff; counter += 1) {
    if (Date.now() > expiresAt) throw new bo.ApiError(403, "pow_expired", "The check took too long; starting again.");
    counterBytes.setUint32(0, counter);
    const material = await crypto.subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash, salt, iterations: parameters.cost }, material, parameters.keyLength * 8);
    const key = toHex(new Uint8Array(bits));
    if (key.startsWith(prefix)) return { counter, derivedKey: key };
  }
  throw new bo.ApiError(400, "pow_unsolved", "This page could not solve the waiting room's check. Please reload the page.");
}

/** A fresh challenge, solved: what a join to an event with proof of work carries. */
async function proofOfWork() {
  if (!(window.crypto && crypto.subtle)) {
    throw new bo.ApiError(400, "pow_unsupported",
      "This event asks every browser to solve a short check before joining the line, and this browser cannot. Please use an up-to-date browser.");
  }
  setState("Checking your browser before you join the line (this keeps bots out and takes a moment)…");
  const challenge = await bo.waitroom("GET", `${queuePath}/challenge`);
  const solution = await solve(challenge);
  return btoa(JSON.stringify({ challenge, solution }));
}

async function join() {
  stopFollowing();
  try {
    const proof = powNeeded ? await proofOfWork() : undefined;
    setState("Joining the line…");
    const view = await bo.waitroom("POST", queuePath, { body: proof ? { pow: proof } : {} });
    powAttempts = 0;
    calm();
    show(view);
  } catch (error) {
    const powRefusal = ["pow_required", "pow_invalid", "pow_expired", "pow_replayed"].includes(error.code);
    if (powRefusal && powAttempts < POW_ATTEMPTS) {
      powNeeded = true;
      powAttempts += 1;
      join();
    } else if (error.code === "pow_not_required") {
      powNeeded = false;
      join();
    } else {
      refused(error, join);
    }
  }
}

function stopWith(words, ...actions) {
  finished = true;
  stopFollowing();
  hidePreQueue();
  hidePosition();
  parts.keepOpen.hidden = true;
  setState(words);
  setActions(...actions);
}

const backHome = () => bo.el("a", { href: "/" }, "See all events");

function refused(error, retry) {
  if (retryable(error)) {
    retryLater(error, retry);
    return;
  }
  calm();
  switch (error.code) {
    case "ticket_expired":
    case "ticket_not_found":
    case "malformed_ticket":
    case "queue_reset":
      forgetTicket();
      join();
      return;
    case "not_in_queue":
      forgetTicket();
      stopWith("You are no longer in the line: you left it, or were away when your turn came.",
        bo.el("button", { type: "button", onclick: restart }, "Join the line again"));
      return;
    case "event_not_found":
      stopWith("This event has no waiting room open, so tickets cannot be bought here yet.", backHome());
      return;
    case "event_closed":
      stopWith("The sale is closed: the waiting room lets nobody more in.", backHome());
      return;
    default:
      stopWith("We could not keep you in the line.", bo.errorBox(error),
        bo.el("button", { type: "button", onclick: restart }, "Try again"));
  }
}

function restart() {
  finished = false;
  parts.keepOpen.hidden = false;
  setActions();
  if (ticket) poll();
  else join();
}

/** The claims of a token kept in this tab, or null when there is none or it is unreadable. */
function tokenClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
  } catch (_) {
    return null;
  }
}

/** Whether this tab was let in already and its admission still runs (back from the seats). */
function stillAdmitted() {
  const token = bo.token(eventId);
  const claims = token && tokenClaims(token);
  return Boolean(claims && claims.scope !== "waitlist" && claims.exp * 1000 > Date.now() + 5000);
}

async function describeEvent() {
  try {
    const event = await bo.gateway("GET", `/v1/events/${eventId}`);
    document.querySelector("#main h1").textContent = `${event.name}: waiting room`;
    document.title = `${event.name} · Waiting room · boxoffice`;
    parts.eventWhen.textContent = bo.dateTime(event.starts_at);
  } catch (_) {
    // The heading stays generic; the waiting room's own answers say what matters.
  }
}

async function loadRoom() {
  try {
    room = await bo.waitroom("GET", `/v1/events/${eventId}/waitroom`);
    powNeeded = Boolean(room.pow_difficulty);
  } catch (error) {
    if (error.code === "event_not_found") throw error;
    room = null;
  }
}

async function start() {
  layout();
  describeEvent();
  if (stillAdmitted()) {
    stopWith("You have been let in already.",
      bo.el("a", { class: "button", href: `/e/${eventId}/seats` }, "Choose your seats"));
    return;
  }
  try {
    await loadRoom();
  } catch (error) {
    refused(error, start);
    return;
  }
  if (room && room.state === "closed") {
    refused(new bo.ApiError(409, "event_closed", "The sale is closed."), start);
    return;
  }
  if (ticket) poll();
  else join();
}

start();
