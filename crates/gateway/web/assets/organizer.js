"use strict";
// The organizer's page: the admin key (kept in this tab only), the events and their
// listing, creating an event, its waiting room, and its sale watched live.
//
// Every admin call sends the key as a bearer header: to the gateway on this origin, to
// the waiting room on its own (CORS, no cookies).

const keyStorageName = "boxoffice.admin-key";
const liveEveryMs = 2000;
const retryAtMostMs = 30000;
const rowsPerSectionAtMost = 1000;
const placesPerSectionAtMost = 100000;
/** In the currency's main unit: the gateway takes up to 10^12 minor units. */
const priceAtMost = 10000000000;

const $ = (id) => document.getElementById(id);
const adminKey = () => sessionStorage.getItem(keyStorageName);
const gatewayAdmin = (method, path, body) => bo.gateway(method, path, { body, token: adminKey() });
const waitroomAdmin = (method, path, body) => bo.waitroom(method, path, { body, token: adminKey() });
const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Which key the page works with: a change makes every answer to an older one stale. */
let keyGeneration = 0;
/** Every event, newest first, as `GET /v1/admin/events` lists them. */
let events = [];
let createdEventId = null;
let selectedEventId = null;
/** The selected event's waiting room as last read or written; null when it has none. */
let waitroomSettings = null;
/** What the waiting-room form was filled with, to send unchanged values back exactly. */
let waitroomPrefill = null;
/** The sections the organizer has added to the event being created. */
const newSections = [];

// ---------------------------------------------------------------------------------------
// Words

/** The API's words for a refusal (written for people), or ours for a fault of the page. */
function messageOf(error) {
  if (!(error instanceof bo.ApiError)) return "Something went wrong in this page. Reload it and try again.";
  return /[.!?]$/.test(error.message) ? error.message : `${error.message}.`;
}

/** A refusal of something the organizer asked for: what to do next too. */
function describe(error) {
  if (error instanceof bo.ApiError && error.status === 401) return `${messageOf(error)} Type the admin key again above.`;
  if (error instanceof bo.ApiError && error.retryAfter) return `${messageOf(error)} Try again in ${error.retryAfter} s.`;
  return messageOf(error);
}

/** Worth trying again by itself: the network, a busy or unavailable service. */
function isTransient(error) {
  return error instanceof bo.ApiError && [0, 429, 502, 503, 504].includes(error.status);
}

function shortDateTime(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

const number = (n) => Number(n).toLocaleString();

/** Sets a status line's words, leaving it alone (not announced again) when unchanged. */
function say(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

/** Shows a refusal in an alert container, or empties it. */
function alertIn(id, message) {
  $(id).replaceChildren(...(message ? [bo.el("p", { class: "error" }, message)] : []));
}

function markInvalid(input, invalid) {
  if (invalid) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** "2027-06-01T19:30" in the browser's time zone from an instant, for datetime-local. */
function toLocalInput(iso) {
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value (the browser's time zone) as a UTC instant, or null if empty. */
function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : null;
}

// ---------------------------------------------------------------------------------------
// The key

async function withRetries(task, statusId, generation) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await task();
    } catch (error) {
      if (!isTransient(error) || generation !== keyGeneration) throw error;
      const seconds = error.retryAfter || Math.min(retryAtMostMs / 1000, 2 ** attempt);
      say(statusId, `${messageOf(error)} Trying again in ${seconds} s.`);
      await sleep(seconds * 1000);
    }
  }
}

/** Checks the stored key by listing the events, then opens the organizer's work. */
async function start() {
  const generation = ++keyGeneration;
  alertIn("key-error", "");
  say("key-status", "Checking the key…");
  try {
    const answer = await withRetries(() => gatewayAdmin("GET", "/v1/admin/events"), "key-status", generation);
    if (generation !== keyGeneration) return;
    events = answer.events;
    say("key-status", `Key accepted for this tab. ${events.length === 1 ? "1 event" : `${number(events.length)} events`}.`);
    $("organizer-work").hidden = false;
    renderEvents();
    renderEventChoice();
  } catch (error) {
    if (generation !== keyGeneration) return;
    say("key-status", "");
    if (error instanceof bo.ApiError && error.status === 401) {
      sessionStorage.removeItem(keyStorageName);
      alertIn("key-error", `This key was refused: ${messageOf(error)}`);
    } else {
      alertIn("key-error", `The events could not be loaded: ${describe(error)}`);
    }
  }
}

function forgetKey() {
  keyGeneration++;
  sessionStorage.removeItem(keyStorageName);
  $("admin-key").value = "";
  $("organizer-work").hidden = true;
  selectedEventId = null;
  stopLive();
  alertIn("key-error", "");
  say("key-status", "The key is forgotten in this tab.");
}

$("key-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const key = $("admin-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(keyStorageName, key);
  $("admin-key").value = "";
  start();
});
$("forget-key").addEventListener("click", forgetKey);

// ---------------------------------------------------------------------------------------
// Events

async function reloadEvents() {
  try {
    events = (await gatewayAdmin("GET", "/v1/admin/events")).events;
    alertIn("events-error", "");
    renderEvents();
    renderEventChoice();
    return true;
  } catch (error) {
    alertIn("events-error", `The events could not be loaded: ${describe(error)}`);
    return false;
  }
}

function renderEvents() {
  if (!events.length) {
    $("events-list").replaceChildren(bo.el("p", {}, "No event yet: create one below."));
    return;
  }
  const hidden = (text) => bo.el("span", { class: "visually-hidden" }, text);
  const items = events.map((event) => {
    const isNew = event.id === createdEventId;
    const listed = Boolean(event.published_at);
    return bo.el("li", { class: isNew ? "org-new" : null },
      bo.el("h3", {}, event.name, isNew ? bo.el("span", { class: "org-tag" }, "New") : null),
      bo.el("p", {},
        `${event.starts_at ? `Starts ${shortDateTime(event.starts_at)}` : "No date yet"} · ${number(event.capacity)} places · `,
        bo.el("strong", {}, listed ? `Listed on the home page since ${shortDateTime(event.published_at)}` : "Not listed")),
      bo.el("div", { class: "org-actions" },
        bo.el("a", { href: `/e/${event.id}` }, "Fan page", hidden(` of ${event.name}`)),
        bo.el("a", { href: `/e/${event.id}/seats` }, "Seats", hidden(` of ${event.name}`)),
        bo.el("button", {
          type: "button", class: "secondary", dataset: { eventId: event.id, action: "publish" },
          onclick: (click) => setListed(event, !listed, click.currentTarget),
        }, listed ? "Unpublish" : "Publish", hidden(` ${event.name}`)),
        bo.el("button", {
          type: "button", class: "secondary", dataset: { eventId: event.id, action: "manage" },
          onclick: () => manage(event.id),
        }, "Run its sale", hidden(`: ${event.name}`))));
  });
  $("events-list").replaceChildren(bo.el("ul", { class: "org-events", "aria-label": "Every event, newest first" }, items));
}

async function setListed(event, listed, button) {
  button.disabled = true;
  try {
    await gatewayAdmin("PATCH", `/v1/events/${event.id}`, { published: listed });
    say("events-status", listed ? `“${event.name}” is listed on the home page.` : `“${event.name}” is no longer listed.`);
    await reloadEvents();
  } catch (error) {
    alertIn("events-error", `“${event.name}” could not be ${listed ? "published" : "unpublished"}: ${describe(error)}`);
  }
  const again = document.querySelector(`#events-list button[data-event-id="${event.id}"][data-action="publish"]`);
  if (again) {
    again.disabled = false;
    again.focus();
  }
}

function manage(eventId) {
  $("manage-event").value = eventId;
  selectEvent(eventId);
  $("sale-heading").scrollIntoView();
  $("manage-event").focus();
}

$("refresh-events").addEventListener("click", async () => {
  if (await reloadEvents()) say("events-status", `The list is up to date (${number(events.length)} events).`);
});

// ---------------------------------------------------------------------------------------
// Creating an event

/** Spreadsheet-style row labels: A … Z, AA, AB, … */
function rowLabel(index) {
  let label = "";
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) label = String.fromCharCode(65 + ((n - 1) % 26)) + label;
  return label;
}

/**
 * Each reserved section's row labels, continuing from the section before: seat labels
 * must be unique in an event, so a second reserved section does not start at A again.
 */
function rowLabelsOf(sectionIndex) {
  const first = newSections.slice(0, sectionIndex).reduce((rows, s) => rows + (s.kind === "reserved" ? s.rows : 0), 0);
  const section = newSections[sectionIndex];
  return Array.from({ length: section.rows }, (_, i) => rowLabel(first + i));
}

function currency() {
  return $("event-currency").value.trim().toUpperCase();
}

function sectionInWords(section, index) {
  const price = section.priceMinor === 0 ? "free" : bo.money(section.priceMinor, currency() || "EUR");
  if (section.kind === "general_admission") {
    return `${section.name}: general admission, ${number(section.capacity)} places, ${price}`;
  }
  const labels = rowLabelsOf(index);
  const rows = labels.length === 1 ? `row ${labels[0]}` : `rows ${labels[0]}–${labels[labels.length - 1]}`;
  const places = section.rows * section.seatsPerRow;
  return `${section.name}: reserved, ${rows}, ${number(section.seatsPerRow)} seats each (${number(places)} places), ${price}`;
}

function renderNewSections() {
  $("sections-empty").hidden = newSections.length > 0;
  $("section-list").replaceChildren(...newSections.map((section, index) => bo.el("li", {},
    bo.el("span", {}, sectionInWords(section, index)),
    bo.el("button", {
      type: "button", class: "secondary",
      onclick: () => removeSection(index),
    }, "Remove", bo.el("span", { class: "visually-hidden" }, ` ${section.name}`)))));
}

function removeSection(index) {
  const [removed] = newSections.splice(index, 1);
  renderNewSections();
  say("section-status", `Removed ${removed.name}.`);
  const buttons = $("section-list").querySelectorAll("button");
  (buttons[Math.min(index, buttons.length - 1)] || $("section-name")).focus();
}

function sectionKind() {
  return $("section-kind-ga").checked ? "general_admission" : "reserved";
}

function syncSectionKind() {
  const reserved = sectionKind() === "reserved";
  $("reserved-fields").hidden = !reserved;
  $("ga-fields").hidden = reserved;
}

/** A whole number from an input within [min, max], or null. */
function wholeNumber(input, min, max) {
  const value = Number(input.value);
  return input.value !== "" && Number.isInteger(value) && value >= min && value <= max ? value : null;
}

/** The section the adder's fields describe, or the first thing wrong with them. */
function readSection() {
  const name = $("section-name").value.trim();
  if (!name) return { field: "section-name", problem: "Give the section a name." };
  if (newSections.some((s) => s.name === name)) {
    return { field: "section-name", problem: `There is already a section called “${name}”: give this one another name.` };
  }
  const price = Number($("section-price").value);
  if ($("section-price").value === "" || !Number.isFinite(price) || price < 0 || price > priceAtMost) {
    return { field: "section-price", problem: `Give a price from 0 (free places) to ${number(priceAtMost)}.` };
  }
  const section = { name, priceMinor: Math.round(price * 100), kind: sectionKind() };
  if (section.kind === "general_admission") {
    section.capacity = wholeNumber($("section-capacity"), 1, placesPerSectionAtMost);
    if (section.capacity === null) {
      return { field: "section-capacity", problem: `Give a capacity from 1 to ${number(placesPerSectionAtMost)}.` };
    }
    return { section };
  }
  section.rows = wholeNumber($("section-rows"), 1, rowsPerSectionAtMost);
  if (section.rows === null) {
    return { field: "section-rows", problem: `Give a number of rows from 1 to ${number(rowsPerSectionAtMost)}.` };
  }
  section.seatsPerRow = wholeNumber($("section-seats-per-row"), 1, placesPerSectionAtMost);
  if (section.seatsPerRow === null) {
    return { field: "section-seats-per-row", problem: "Give how many seats each row has (1 or more)." };
  }
  if (section.rows * section.seatsPerRow > placesPerSectionAtMost) {
    return {
      field: "section-seats-per-row",
      problem: `A section has at most ${number(placesPerSectionAtMost)} seats; this one would have ${number(section.rows * section.seatsPerRow)}.`,
    };
  }
  return { section };
}

const adderFields = ["section-name", "section-price", "section-rows", "section-seats-per-row", "section-capacity"];

function addSection() {
  adderFields.forEach((id) => markInvalid($(id), false));
  const { section, field, problem } = readSection();
  if (!section) {
    alertIn("section-error", problem);
    markInvalid($(field), true);
    $(field).focus();
    return;
  }
  alertIn("section-error", "");
  newSections.push(section);
  renderNewSections();
  say("section-status", `Added ${sectionInWords(section, newSections.length - 1)}.`);
  adderFields.forEach((id) => { $(id).value = ""; });
  $("section-name").focus();
}

$("add-section").addEventListener("click", addSection);
// Enter in a section's fields adds the section rather than submitting the whole event.
$("section-adder").addEventListener("keydown", (key) => {
  if (key.key === "Enter" && key.target.matches("input:not([type=radio]):not([type=checkbox])")) {
    key.preventDefault();
    addSection();
  }
});
$("section-kind-reserved").addEventListener("change", syncSectionKind);
$("section-kind-ga").addEventListener("change", syncSectionKind);
$("event-currency").addEventListener("change", renderNewSections);

function syncRefund() {
  $("event-refund-hours").disabled = !$("event-refund").checked;
}
$("event-refund").addEventListener("change", syncRefund);

function newEventBody() {
  const sections = newSections.map((section, index) => {
    const price = { amount_minor: section.priceMinor, currency: currency() };
    if (section.kind === "general_admission") {
      return { name: section.name, kind: "general_admission", price, capacity: section.capacity };
    }
    const rows = rowLabelsOf(index).map((label) => ({ label, seats: section.seatsPerRow }));
    return { name: section.name, kind: "reserved", price, rows };
  });
  return {
    name: $("event-name").value.trim(),
    starts_at: fromLocalInput($("event-starts-at").value),
    max_per_order: Number($("event-max-per-order").value),
    hold_ttl_seconds: Number($("event-hold-minutes").value) * 60,
    refund_policy: $("event-refund").checked
      ? [{ before_hours: Number($("event-refund-hours").value), refund_percent: 100 }]
      : undefined,
    published: $("event-published").checked,
    sections,
  };
}

$("create-event").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  alertIn("create-error", "");
  say("create-status", "");
  if (!newSections.length) {
    alertIn("create-error", "Add at least one section: fill in its fields under “Sections” and press “Add section”.");
    $("section-name").focus();
    return;
  }
  const button = submitted.submitter || $("create-event").querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const created = await gatewayAdmin("POST", "/v1/events", newEventBody());
    const places = created.sections.reduce((sum, s) => sum + s.capacity, 0);
    createdEventId = created.id;
    $("create-event").reset();
    newSections.length = 0;
    renderNewSections();
    syncSectionKind();
    syncRefund();
    say("section-status", "");
    say("create-status", `“${created.name}” was created with ${number(places)} places${created.published_at ? " and is listed on the home page" : ""}. Open its waiting room under “Run a sale”.`);
    await reloadEvents();
    $("manage-event").value = created.id;
    selectEvent(created.id);
  } catch (error) {
    alertIn("create-error", `The event was not created: ${describe(error)}`);
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------
// Running a sale: which event

function renderEventChoice() {
  const select = $("manage-event");
  const options = events.map((event) => bo.el("option", { value: event.id },
    event.starts_at ? `${event.name} (${shortDateTime(event.starts_at)})` : event.name));
  select.replaceChildren(...options);
  select.disabled = !events.length;
  const stillThere = events.some((event) => event.id === selectedEventId);
  const chosen = stillThere ? selectedEventId : events.length ? events[0].id : null;
  if (chosen) select.value = chosen;
  if (chosen !== selectedEventId) selectEvent(chosen);
  else if (!chosen) renderWaitroomControls();
}

$("manage-event").addEventListener("change", () => selectEvent($("manage-event").value));

function selectEvent(eventId) {
  if (eventId === selectedEventId) return;
  selectedEventId = eventId;
  waitroomSettings = null;
  alertIn("waitroom-error", "");
  say("waitroom-status", "");
  clearLive();
  if (!eventId) {
    renderWaitroomControls();
    return;
  }
  loadWaitroom(eventId);
  restartLive();
}

// ---------------------------------------------------------------------------------------
// The waiting room

const stateInWords = {
  running: "Running: fans are let in at your rate",
  paused: "Paused: nobody is let in; fans in line keep their places",
  closed: "Closed: nobody can join; fans already let in may shop until their time ends",
};
const stateInOneWord = { running: "Running", paused: "Paused", closed: "Closed" };

async function loadWaitroom(eventId) {
  $("waitroom-current").replaceChildren(bo.el("p", { class: "loading" }, "Reading the waiting room…"));
  try {
    const settings = await waitroomAdmin("GET", `/v1/admin/events/${eventId}/waitroom`);
    if (eventId !== selectedEventId) return;
    waitroomSettings = settings;
  } catch (error) {
    if (eventId !== selectedEventId) return;
    if (!(error instanceof bo.ApiError && error.status === 404)) {
      alertIn("waitroom-error", `The waiting room could not be read: ${describe(error)}`);
    }
    waitroomSettings = null;
  }
  renderWaitroomControls();
  fillWaitroomForm();
}

/** Fans may queue, but the sale's opening time is still to come. */
function beforeOpening(settings) {
  return Boolean(settings && !settings.opened_at && settings.opens_at && new Date(settings.opens_at) > new Date());
}

/** The sale has opened (or opened at once): its opening time can no longer change. */
function openingFixed(settings) {
  return Boolean(settings && (settings.opened_at || !settings.opens_at || new Date(settings.opens_at) <= new Date()));
}

function renderWaitroomControls() {
  const settings = waitroomSettings;
  const lines = [];
  if (!selectedEventId) {
    lines.push(bo.el("p", {}, "Create an event first."));
  } else if (!settings) {
    lines.push(bo.el("p", {}, "No waiting room yet for this event: set one up below."));
  } else {
    const state = beforeOpening(settings) && settings.state === "running"
      ? `Fans may queue now; the sale opens ${shortDateTime(settings.opens_at)}; fans who arrive before then are let in in a random order`
      : stateInWords[settings.state] || settings.state;
    lines.push(bo.el("p", {}, bo.el("strong", {}, state), "."));
    lines.push(bo.el("p", {},
      `${number(settings.admit_rate)} fans a second, at most ${number(settings.max_active)} shopping at once, `
      + `${number(Math.round(settings.token_lifetime_secs / 6) / 10)} minutes each.`));
    if (settings.opened_at) lines.push(bo.el("p", {}, `The sale opened ${shortDateTime(settings.opened_at)}.`));
  }
  $("waitroom-current").replaceChildren(...lines);
  const running = settings && settings.state === "running";
  const paused = settings && settings.state === "paused";
  $("waitroom-pause").disabled = !running;
  $("waitroom-resume").disabled = !paused;
  $("waitroom-submit").disabled = !selectedEventId;
  $("waitroom-submit").textContent = settings && settings.state !== "closed" ? "Save the settings" : "Open the waiting room";
  const fixed = openingFixed(settings);
  $("waitroom-opens-at").disabled = fixed;
  $("waitroom-opens-at-hint").textContent = fixed
    ? "The sale has opened: its opening time can no longer change."
    : `In your time zone (${timeZone}). Empty: open now. Fans who arrive before the opening are put in a random order.`;
}

function fillWaitroomForm() {
  const settings = waitroomSettings;
  $("open-waitroom").reset();
  if (settings) {
    $("waitroom-rate").value = settings.admit_rate;
    $("waitroom-max-active").value = settings.max_active;
    $("waitroom-token-minutes").value = Math.max(1, Math.round(settings.token_lifetime_secs / 60));
    $("waitroom-opens-at").value = settings.opens_at ? toLocalInput(settings.opens_at) : "";
  }
  waitroomPrefill = { minutes: $("waitroom-token-minutes").value, opensAt: $("waitroom-opens-at").value };
}

/**
 * The settings to send. A value the organizer left as filled in goes back exactly as the
 * waiting room had it (an opening time with seconds, a lifetime not in whole minutes),
 * and what this form does not show (proof of work, a pause) is kept.
 */
function waitroomBody() {
  const settings = waitroomSettings;
  const minutes = $("waitroom-token-minutes").value;
  const opensAt = $("waitroom-opens-at").value;
  const keep = settings && waitroomPrefill;
  const body = {
    admit_rate: Number($("waitroom-rate").value),
    max_active: Number($("waitroom-max-active").value),
    token_lifetime_secs: keep && minutes === waitroomPrefill.minutes ? settings.token_lifetime_secs : Number(minutes) * 60,
    opens_at: keep && (openingFixed(settings) || opensAt === waitroomPrefill.opensAt) ? settings.opens_at : fromLocalInput(opensAt),
    state: settings && settings.state === "paused" ? "paused" : "running",
  };
  if (settings && settings.pow_difficulty) body.pow_difficulty = settings.pow_difficulty;
  return body;
}

$("open-waitroom").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const eventId = selectedEventId;
  if (!eventId) return;
  alertIn("waitroom-error", "");
  say("waitroom-status", "");
  const opening = !waitroomSettings || waitroomSettings.state === "closed";
  const button = $("waitroom-submit");
  button.disabled = true;
  try {
    const settings = await waitroomAdmin("PUT", `/v1/admin/events/${eventId}/waitroom`, waitroomBody());
    if (eventId !== selectedEventId) return;
    waitroomSettings = settings;
    const paused = settings.state === "paused" ? " Admission stays paused: resume it below." : "";
    const done = !opening ? "The settings are saved."
      : beforeOpening(settings) ? `The waiting room is open for queueing; the sale opens ${shortDateTime(settings.opens_at)}.`
      : "The waiting room is open.";
    say("waitroom-status", `${done}${paused}`);
    restartLive();
  } catch (error) {
    if (eventId === selectedEventId) alertIn("waitroom-error", `The waiting room was not ${opening ? "opened" : "changed"}: ${describe(error)}`);
  } finally {
    if (eventId === selectedEventId) {
      renderWaitroomControls();
      fillWaitroomForm();
    }
  }
});

async function setAdmission(action) {
  const eventId = selectedEventId;
  alertIn("waitroom-error", "");
  try {
    const settings = await waitroomAdmin("POST", `/v1/admin/events/${eventId}/waitroom/${action}`);
    if (eventId !== selectedEventId) return;
    waitroomSettings = settings;
    say("waitroom-status", action === "pause" ? "Admission is paused." : "Admission has resumed.");
    renderWaitroomControls();
    $(action === "pause" ? "waitroom-resume" : "waitroom-pause").focus();
    restartLive();
  } catch (error) {
    if (eventId === selectedEventId) alertIn("waitroom-error", `Admission was not ${action === "pause" ? "paused" : "resumed"}: ${describe(error)}`);
  }
}

$("waitroom-pause").addEventListener("click", () => setAdmission("pause"));
$("waitroom-resume").addEventListener("click", () => setAdmission("resume"));

// ---------------------------------------------------------------------------------------
// Watching the sale live: every 2 s while the tab is visible and updates are not paused;
// after a failure, later and later (up to 30 s).

const live = { run: 0, timer: null, paused: false, failures: 0, oversold: null, updatedAt: null };

const saleStateInWords = {
  on_sale: "On sale",
  all_held: "Every place left is in a basket (some may come back)",
  sold_out: "Sold out",
};

const rateReasonInWords = {
  organizer_rate: "your rate, in full",
  not_running: "nobody is let in: paused, closed or not open yet",
  sold_out: "nobody is let in: sold out",
  budget_full: "nobody more for now: as many fans shop as the places left can use",
  room_full: "nobody more for now: as many fans shop as you allow at once",
  gateway_distress: "slowed down: the gateways report they are struggling",
};

function canRefresh() {
  return Boolean(selectedEventId && adminKey() && !live.paused && !document.hidden);
}

function stopLive() {
  live.run++;
  clearTimeout(live.timer);
  live.timer = null;
}

/** Starts a fresh round of updates now (an older round's answers are dropped). */
function restartLive() {
  stopLive();
  live.failures = 0;
  if (canRefresh()) refreshLive(live.run);
}

function clearLive() {
  live.oversold = null;
  live.updatedAt = null;
  const oversold = $("oversold");
  oversold.textContent = "Oversold: not measured yet";
  oversold.dataset.count = "";
  $("oversold-box").classList.remove("org-bad", "org-ok");
  say("oversold-verdict", "");
  alertIn("oversold-alert", "");
  sayUpdated();
  say("live-error", "");
  $("live-room").replaceChildren();
  $("live-sections").replaceChildren();
}

async function refreshLive(run) {
  const eventId = selectedEventId;
  const [stats, details] = await Promise.allSettled([
    waitroomAdmin("GET", `/v1/admin/events/${eventId}/waitroom/stats`),
    bo.gateway("GET", `/v1/events/${eventId}`),
  ]);
  if (run !== live.run) return;
  const failed = [];
  if (details.status === "fulfilled") renderSectionFigures(details.value);
  else failed.push(details.reason);
  if (stats.status === "fulfilled") {
    renderRoomFigures(stats.value);
  } else if (stats.reason instanceof bo.ApiError && stats.reason.status === 404) {
    $("live-room").replaceChildren(bo.el("p", {}, "No waiting room figures: this event has no waiting room yet."));
  } else {
    failed.push(stats.reason);
  }
  let delay = liveEveryMs;
  if (failed.length) {
    live.failures++;
    const retryAfter = Math.max(...failed.map((error) => error.retryAfter || 0));
    delay = Math.max(retryAfter * 1000, Math.min(retryAtMostMs, liveEveryMs * 2 ** live.failures));
    const messages = [...new Set(failed.map(messageOf))].join(" ");
    say("live-error", `The figures could not all be refreshed: ${messages} Trying again in ${Math.round(delay / 1000)} s.`);
  } else {
    live.failures = 0;
    live.updatedAt = new Date();
    say("live-error", "");
  }
  sayUpdated();
  if (canRefresh()) live.timer = setTimeout(() => refreshLive(run), delay);
}

function sayUpdated() {
  const when = live.updatedAt ? `All figures as of ${live.updatedAt.toLocaleTimeString()}.` : "";
  say("live-updated", live.paused ? `Updates paused. ${when}` : when);
}

/** A table of figures, scrolling inside its own box; columns after the first are numbers. */
function figuresTable(caption, headings, bodyRows, footRow) {
  return bo.el("div", { class: "org-scroll", role: "region", tabindex: "0", "aria-label": caption },
    bo.el("table", {},
      bo.el("caption", {}, caption),
      bo.el("thead", {}, bo.el("tr", {}, headings.map((title, i) =>
        bo.el("th", { scope: "col", class: i ? "org-num" : null }, title)))),
      bo.el("tbody", {}, bodyRows),
      footRow ? bo.el("tfoot", {}, footRow) : null));
}

function figureRow(cells, rowClass) {
  return bo.el("tr", { class: rowClass },
    bo.el("th", { scope: "row" }, cells[0]),
    cells.slice(1).map((cell) => bo.el("td", { class: "org-num" }, cell)));
}

/** Figures that are words as often as numbers: one per row, read left to right. */
function figuresList(caption, rows) {
  return bo.el("div", { class: "org-scroll", role: "region", tabindex: "0", "aria-label": caption },
    bo.el("table", {},
      bo.el("caption", {}, caption),
      bo.el("thead", {}, bo.el("tr", {}, bo.el("th", { scope: "col" }, "Figure"), bo.el("th", { scope: "col" }, "Now"))),
      bo.el("tbody", {}, rows.map(([label, value]) => bo.el("tr", {}, bo.el("th", { scope: "row" }, label), bo.el("td", {}, value))))));
}

/**
 * Sold and held against each section's capacity. Sold is `booked`; the places kept for a
 * waitlist are free places, not sold, so they do not count.
 */
function renderSectionFigures(event) {
  const beyond = (s) => Math.max(0, s.booked + s.held - s.capacity);
  const totals = { capacity: 0, booked: 0, held: 0, remaining: 0, kept: 0, beyond: 0 };
  const rows = event.sections.map((s) => {
    totals.capacity += s.capacity;
    totals.booked += s.booked;
    totals.held += s.held;
    totals.remaining += s.remaining;
    totals.kept += s.kept_for_waitlist;
    totals.beyond += beyond(s);
    return figureRow([s.name, number(s.capacity), number(s.booked), number(s.held), number(s.remaining),
      number(s.kept_for_waitlist), number(beyond(s))], beyond(s) > 0 ? "org-oversold-row" : null);
  });
  const foot = figureRow(["All sections", number(totals.capacity), number(totals.booked), number(totals.held),
    number(totals.remaining), number(totals.kept), number(totals.beyond)]);
  const cancelled = event.cancelled_at
    ? bo.el("p", { class: "notice" }, `This event was cancelled ${shortDateTime(event.cancelled_at)}: nothing more is sold.`)
    : null;
  $("live-sections").replaceChildren(...[cancelled,
    figuresTable("Places per section",
      ["Section", "Capacity", "Sold", "Held", "Remaining", "Kept for waitlist", "Beyond capacity"], rows, foot)]
    .filter(Boolean));
  showOversold(totals.beyond, event.sections.filter((s) => beyond(s) > 0).map((s) => s.name));
}

function showOversold(count, sectionNames) {
  const oversold = $("oversold");
  oversold.textContent = `Oversold: ${number(count)}`;
  oversold.dataset.count = String(count);
  $("oversold-box").classList.toggle("org-bad", count > 0);
  $("oversold-box").classList.toggle("org-ok", count === 0);
  if (count === 0) {
    say("oversold-verdict", "OK: no section has more places sold and held than it has.");
    alertIn("oversold-alert", "");
  } else {
    const verdict = `ALERT: ${number(count)} ${count === 1 ? "place" : "places"} sold or held beyond capacity in ${sectionNames.join(", ")}.`;
    say("oversold-verdict", verdict);
    if (live.oversold !== count) alertIn("oversold-alert", verdict);
  }
  live.oversold = count;
}

function renderRoomFigures(stats) {
  const settings = waitroomSettings;
  const inventory = stats.inventory;
  const admission = stats.admission;
  const measured = stats.measured_rate === null || stats.measured_rate === undefined
    ? "Not measured yet"
    : `${number(Math.round(stats.measured_rate * 10) / 10)} a second`;
  const rows = [
    ["Waiting room", beforeOpening(settings) && stats.state === "running"
      ? `Queueing; the sale opens ${shortDateTime(settings.opens_at)}`
      : stateInOneWord[stats.state] || stats.state],
    ["In the queue", number(stats.queue_length)],
    ["Let in per second (measured)", measured],
    ["Rate in force", `${number(Math.round(admission.rate_in_force * 10) / 10)} a second (${rateReasonInWords[admission.reason] || admission.reason})`],
    ["Shopping now", settings ? `${number(stats.active)} of at most ${number(settings.max_active)}` : number(stats.active)],
    ["Let in since opening", number(stats.admitted_total)],
    ["Skipped as gone", number(stats.skipped_total)],
    ["Sale", inventory ? saleStateInWords[inventory.sale_state] || inventory.sale_state
      : "Not known to the waiting room right now: it lets fans in by your rate and limit alone"],
  ];
  if (inventory) {
    rows.push(["Places for sale (waiting room's count)", number(inventory.sellable)]);
    rows.push(["Places in baskets (waiting room's count)", number(inventory.held)]);
    rows.push(["Shoppers the places left can use", number(inventory.shopper_cap)]);
  }
  const backpressure = admission.backpressure;
  if (backpressure && backpressure.gateways_reporting) {
    rows.push(["Gateways reporting", number(backpressure.gateways_reporting)]);
    rows.push(["Gateways' distress", `${Math.round(backpressure.gateway_distress * 100)} %`]);
  }
  $("live-room").replaceChildren(figuresList("The waiting room now", rows));
}

$("live-toggle").addEventListener("click", () => {
  live.paused = !live.paused;
  $("live-toggle").setAttribute("aria-pressed", String(live.paused));
  $("live-toggle").textContent = live.paused ? "Resume updates" : "Pause updates";
  if (live.paused) stopLive();
  else restartLive();
  sayUpdated();
});

document.addEventListener("visibilitychange", () => {
  if (document.hidden) stopLive();
  else restartLive();
});

// ---------------------------------------------------------------------------------------

$("event-starts-at-hint").textContent = `In your time zone (${timeZone}). Leave empty if the date is not set yet.`;
syncSectionKind();
syncRefund();
if (adminKey()) start();
