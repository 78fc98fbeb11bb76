"use strict";
// The seat picker (issue 17): the venue drawn from its layout and kept live by the seat
// stream, the fan's choice held all or none, the hold kept alive by heartbeats while this
// page is open and released when the fan leaves it (README "The live seat map", "An open
// page's hold", "Waitlist").
//
// The map is HTML, not SVG: each seat is a `gridcell` in one `grid` per section, so
// screen readers get rows, names and selection the way they know grids, the seats reflow
// and zoom with the text, and focus rings are the page's own. One seat at a time is in
// the tab order (roving tabindex across every section); the arrow keys do the rest.

(() => {
  const [eventId] = bo.pathIds();
  const api = `/v1/events/${eventId}`;
  const holdKey = `boxoffice.hold.${eventId}`;
  const releasedKey = `boxoffice.released.${eventId}`;
  /** How soon after leaving a page back in the same tab is a reload (holdAgainAfterReload). */
  const RELOAD_GRACE_MS = 20000;
  const waitingPage = `/e/${eventId}`;

  const STATE_WORDS = {
    available: "available",
    held: "held by another fan",
    booked: "booked",
    mine: "in your hold",
  };

  const page = {
    token: bo.token(eventId),
    details: null,
    layout: null,
    seats: new Map(),
    seatsByLabel: new Map(),
    rows: [],
    roving: null,
    selected: new Set(),
    hold: null,
    holdSeatIds: new Set(),
    leavingWithHold: false,
    stopped: false,
  };

  const live = {
    received: false,
    position: null,
    letters: new Map(),
    heldUntil: new Map(),
    kept: new Set(),
    source: null,
    lapseTimer: null,
    reconnectDelay: 1000,
  };

  const timers = { countdown: null, heartbeat: null, details: null, waitlist: null };

  // ---- small helpers -------------------------------------------------------------

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function idempotencyKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** Why something the fan asked for failed, in words (a lost connection is not retried here). */
  const problem = (error) => !(error instanceof bo.ApiError) ? "Something went wrong. Please try again."
    : error.status === 0 ? "We could not reach boxoffice. Check your connection and try again." : error.message;

  const retryable = (error) =>
    error instanceof bo.ApiError && (error.status === 0 || error.status === 429 || error.status === 503 ||
      error.code === "seat_contended" || error.code === "request_in_progress");

  const backoff = (error, attempt) =>
    error.retryAfter ? error.retryAfter * 1000 : Math.min(8000, 300 * 2 ** attempt);

  /** A read the page cannot do without: retried with backoff until it answers or refuses. */
  async function readUntilAnswered(path, status, token) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await bo.gateway("GET", path, { token });
      } catch (error) {
        if (!retryable(error)) throw error;
        status.textContent = error.status === 0 ? error.message : `${error.message} Trying again…`;
        await sleep(backoff(error, Math.min(attempt, 5)));
      }
    }
  }

  function priceOf(section) {
    return bo.money(section.price.amount_minor, section.price.currency);
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function labelList(labels) {
    if (labels.length <= 1) return labels.join("");
    return `${labels.slice(0, -1).join(", ")} and ${labels[labels.length - 1]}`;
  }

  function say(text) {
    const message = document.getElementById("seat-message");
    if (!message) return;
    message.hidden = !text;
    if (text && message.textContent === text) {
      // The same words again: emptied for a moment, so they are announced again.
      message.textContent = "";
      setTimeout(() => { message.textContent = text; }, 50);
    } else {
      message.textContent = text;
    }
  }

  // ---- what the fan is told instead of the picker ---------------------------------

  function stopPicker() {
    if (live.source) live.source.close();
    live.source = null;
    for (const name of Object.keys(timers)) clearInterval(timers[name]);
    clearTimeout(live.lapseTimer);
  }

  function stopEverything() {
    page.stopped = true;
    stopPicker();
  }

  function showNoToken() {
    stopEverything();
    bo.render(
      bo.el("p", { class: "notice" },
        "To choose seats you need your turn from the queue first. Join the queue; when it is your turn you come back here."),
      bo.el("p", {}, bo.el("a", { class: "button", href: waitingPage }, "Go to the queue for this event")),
    );
  }

  function showAccessEnded(error) {
    stopEverything();
    bo.forgetToken(eventId);
    sessionStorage.removeItem(holdKey);
    page.hold = null;
    const why = error && error.code === "token_revoked"
      ? "The organizer withdrew your access to this sale."
      : "Your time to shop has ended (your access expired or is not valid here).";
    bo.render(
      bo.el("p", { class: "error", role: "alert" }, `${why} Seats you held but had not paid for go back on sale.`),
      bo.el("p", {}, bo.el("a", { class: "button", href: waitingPage }, "Back to the queue")),
    );
  }

  /** Handles what any fan call can answer about the token itself; true when it did. */
  function handledAsAccess(error) {
    if (!(error instanceof bo.ApiError)) return false;
    if (error.status === 401 || error.code === "token_for_other_event") {
      showAccessEnded(error);
      return true;
    }
    if (error.code === "token_scope_insufficient") {
      showWaitlistOnly();
      return true;
    }
    return false;
  }

  // ---- loading ----------------------------------------------------------------------

  async function start() {
    if (!page.token) return showNoToken();

    const status = document.querySelector("#main .loading");
    let details;
    let layout;
    // The fan's own bookings are read only to learn at once whether the gateway takes
    // this token to shop here (not expired, revoked, for another event or waitlist-only).
    let access = null;
    try {
      [details, layout] = await Promise.all([
        readUntilAnswered(api, status),
        readUntilAnswered(`${api}/seats/layout`, status),
        readUntilAnswered(`${api}/bookings`, status, page.token).catch((error) => { access = error; }),
      ]);
    } catch (error) {
      return bo.render(bo.errorBox(error), bo.el("p", {}, bo.el("a", { href: "/" }, "See all events")));
    }
    page.details = details;
    page.layout = layout;
    document.title = `Choose your seats · ${details.name} · boxoffice`;

    if (details.cancelled_at) {
      return bo.render(eventLine(), bo.el("p", { class: "error", role: "alert" },
        "The organizer cancelled this event: nothing more is sold."));
    }
    if (access && handledAsAccess(access)) return;

    renderPicker();
    openStream();
    timers.details = setInterval(refreshDetails, 20000);
    await resumeHold();
    if (details.waitlist_enabled) await showWaitlistEntryOrOffer();
  }

  function eventLine() {
    return bo.el("p", { class: "seat-event" },
      bo.el("strong", {}, page.details.name), " · ", bo.dateTime(page.details.starts_at));
  }

  async function refreshDetails() {
    try {
      page.details = await bo.gateway("GET", api);
    } catch (_) {
      return; // The next refresh tries again; the counts shown are a little older meanwhile.
    }
    // Reserved sections are counted from the live map, fresher than these details.
    for (const section of page.details.sections) {
      if (section.kind !== "reserved" || !live.received) showRemaining(section);
    }
    if (page.details.waitlist_enabled && nothingForSale() && !document.getElementById("waitlist")) {
      await showWaitlistEntryOrOffer();
    }
  }

  const sectionDetails = (id) => page.details.sections.find((s) => s.id === id);
  const nothingForSale = () => page.details.sections.every((s) => s.remaining === 0);

  function showRemaining(section) {
    const count = document.querySelector(`[data-remaining-for="${section.id}"]`);
    if (count) count.textContent = remainingText(section);
    const form = document.querySelector(`form[data-section="${section.id}"]`);
    if (form) fillQuantities(form, section);
  }

  function remainingText(section) {
    const kind = section.kind === "reserved" ? ["seat", "seats"] : ["place", "places"];
    return section.remaining === 0 ? "Sold out" : `${plural(section.remaining, ...kind)} left`;
  }

  // ---- the picker ---------------------------------------------------------------------

  function renderPicker() {
    const reserved = page.layout.sections.filter((s) => s.kind === "reserved");
    const general = page.layout.sections.filter((s) => s.kind !== "reserved");
    const limit = page.details.max_per_order;

    const nodes = [
      eventLine(),
      bo.el("p", { class: "muted" },
        `Choose up to ${plural(limit, "seat", "seats")} per order.`,
        page.details.max_per_fan ? ` At most ${page.details.max_per_fan} places per fan for this event.` : "",
        ` A hold keeps them for you for ${plural(Math.max(1, Math.round(page.details.hold_ttl_seconds / 60)), "minute", "minutes")} while this page is open.`),
      bo.el("p", { id: "seat-message", role: "alert", class: "seat-message", hidden: true }),
      bo.el("div", { id: "hold-slot" }),
      bo.el("div", { id: "waitlist-slot" }),
    ];

    if (reserved.length) {
      nodes.push(bo.el("section", { class: "seat-picker", "aria-labelledby": "map-title" },
        bo.el("h2", { id: "map-title" }, "Choose on the map"),
        legend(),
        bo.el("p", { id: "stream-status", role: "status", class: "muted" }, "Loading the seats…"),
        bo.el("p", { class: "visually-hidden", id: "map-help" },
          "Use the arrow keys to move between seats and rows, Home and End for the ends of a row, Enter or Space to choose a seat."),
        bo.el("div", { class: "seat-stage", "aria-hidden": "true" }, "Stage"),
        bo.el("div", { class: "seat-map", id: "seat-map" }, bo.el("div", { class: "seat-map-venue" }, reserved.map(sectionGrid))),
        bo.el("div", { class: "seat-choice" },
          bo.el("p", { id: "selection-summary", "aria-live": "polite" }),
          bo.el("button", { id: "hold-seats", type: "button", disabled: true, onclick: holdSelected }, "Hold seats")),
      ));
      nodes.push(bo.el("section", { class: "seat-quick", "aria-labelledby": "best-title" },
        bo.el("h2", { id: "best-title" }, "Or let us pick the best seats"),
        reserved.map((section) => quantityForm(section, "best"))));
    }
    if (general.length) {
      nodes.push(bo.el("section", { class: "seat-quick", "aria-labelledby": "ga-title" },
        bo.el("h2", { id: "ga-title" }, "Standing and unreserved places"),
        general.map((section) => quantityForm(section, "general"))));
    }
    bo.render(nodes);

    const map = document.getElementById("seat-map");
    if (map) {
      map.addEventListener("keydown", onMapKey);
      map.addEventListener("click", onMapClick);
      map.addEventListener("focusin", (event) => {
        const seat = seatOf(event.target);
        if (seat) makeRoving(seat);
      });
    }
    updateChoice();
  }

  function legend() {
    const item = (state, selected, text) => bo.el("li", {},
      bo.el("span", { class: "seat seat-sample", "data-state": state, "aria-selected": selected ? "true" : null,
        "aria-hidden": "true" }, bo.el("span", { class: "seat-number" }, "4")),
      text);
    return bo.el("ul", { class: "seat-legend", "aria-label": "Legend" },
      item("available", false, "Available: open seat with its number"),
      item("available", true, "Your choice: filled, with a tick"),
      item("mine", false, "In your hold: filled, with a star"),
      item("held", false, "Held by another fan: striped circle"),
      item("booked", false, "Booked: dark square with a cross"));
  }

  function sectionGrid(section) {
    const titleId = `section-${section.id}`;
    const remaining = sectionDetails(section.id);
    const grid = bo.el("div", { role: "grid", class: "seat-grid", "aria-labelledby": titleId,
      "aria-describedby": "map-help" });
    for (const row of section.rows) {
      const rowRecord = { index: page.rows.length, label: row.label, seats: [] };
      page.rows.push(rowRecord);
      const rowEl = bo.el("div", { role: "row", class: "seat-row" },
        row.label ? bo.el("span", { role: "rowheader", class: "seat-rowheader" },
          bo.el("span", { class: "visually-hidden" }, "Row "), row.label) : null);
      for (const [id, number, label] of row.seats) {
        const seat = { id, number, label, section, row: rowRecord, column: rowRecord.seats.length, el: null };
        seat.el = bo.el("span", { role: "gridcell", class: "seat", tabindex: "-1", "data-seat": label,
          "data-state": "held", "aria-selected": "false", "aria-label": `${seatPlace(seat)}, loading` },
        bo.el("span", { class: "seat-number" }, number));
        rowRecord.seats.push(seat);
        page.seats.set(id, seat);
        page.seatsByLabel.set(label, seat);
        rowEl.append(seat.el);
      }
      grid.append(rowEl);
    }
    if (!page.roving && page.rows.length && page.rows[0].seats.length) makeRoving(page.rows[0].seats[0]);
    return bo.el("div", { class: "seat-section" },
      bo.el("h3", { id: titleId }, section.name, " · ", priceOf(section),
        bo.el("span", { class: "muted" }, " · ",
          bo.el("span", { "data-remaining-for": section.id }, remaining ? remainingText(remaining) : ""))),
      grid);
  }

  function quantityForm(section, kind) {
    const selectId = `quantity-${section.id}`;
    const noun = kind === "best" ? ["seat", "seats"] : ["place", "places"];
    const select = bo.el("select", { id: selectId, name: "quantity" });
    const button = bo.el("button", { type: "submit" });
    const form = bo.el("form", { class: "seat-quantity", "data-section": section.id, "data-noun": noun.join(" ") },
      bo.el("label", { for: selectId }, kind === "best" ? `Best available in ${section.name}` : `${section.name}: how many places`),
      bo.el("div", { class: "seat-quantity-row" }, select, button));
    select.addEventListener("change", () => labelQuantityButton(form));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      holdQuantity(section, Number(select.value), noun);
    });
    const details = sectionDetails(section.id);
    const wrapper = bo.el("div", { class: "card" },
      bo.el("h3", {}, section.name, " · ", priceOf(section)),
      kind === "general"
        ? bo.el("p", { "data-remaining-for": section.id }, details ? remainingText(details) : "")
        : null,
      form);
    if (details) fillQuantities(form, details);
    return wrapper;
  }

  function fillQuantities(form, section) {
    const select = form.querySelector("select");
    const most = Math.max(0, Math.min(page.details.max_per_order, section.remaining));
    if (select.options.length === most && !(most === 0 && !select.disabled)) return labelQuantityButton(form);
    const chosen = Number(select.value) || 1;
    select.replaceChildren(...Array.from({ length: most }, (_, i) =>
      bo.el("option", { value: i + 1, selected: i + 1 === Math.min(chosen, most) }, i + 1)));
    select.disabled = most < 1;
    select.hidden = most < 1;
    labelQuantityButton(form);
  }

  function labelQuantityButton(form) {
    const select = form.querySelector("select");
    const button = form.querySelector("button");
    const [one, many] = form.dataset.noun.split(" ");
    button.disabled = select.disabled || !!page.hold;
    button.textContent = select.disabled ? "Sold out" : `Hold ${plural(Number(select.value), one, many)}`;
  }

  // ---- seat states ------------------------------------------------------------------

  function stateOf(seat, now) {
    if (page.holdSeatIds.has(seat.id)) return "mine";
    const letter = live.letters.get(seat.id);
    if (letter === "b") return "booked";
    if (letter === "h") {
      const until = live.heldUntil.get(seat.id);
      if (until === null || until === undefined || until > now) return "held";
    }
    // Free seats of a section whose waitlist has people in it are kept for them.
    if (live.kept.has(seat.section.id)) return "held";
    return "available";
  }

  function seatPlace(seat) {
    return seat.row.label ? `Row ${seat.row.label}, seat ${seat.number}` : `Seat ${seat.number}`;
  }

  function seatName(seat, state) {
    return `${seatPlace(seat)}, ${STATE_WORDS[state]}, ${priceOf(seat.section)}`;
  }

  /** Draws every seat as it is now; tells the fan about chosen seats someone else took. */
  function drawSeats() {
    if (!live.received) return updateChoice();
    const now = Date.now();
    const lost = [];
    const free = new Map();
    for (const seat of page.seats.values()) {
      const state = stateOf(seat, now);
      if (state === "available") free.set(seat.section, (free.get(seat.section) || 0) + 1);
      if (page.selected.has(seat.id) && state !== "available") {
        page.selected.delete(seat.id);
        lost.push(seat.label);
      }
      if (seat.el.dataset.state !== state) seat.el.dataset.state = state;
      const selected = page.selected.has(seat.id) ? "true" : "false";
      if (seat.el.getAttribute("aria-selected") !== selected) seat.el.setAttribute("aria-selected", selected);
      const name = seatName(seat, state);
      if (seat.el.getAttribute("aria-label") !== name) seat.el.setAttribute("aria-label", name);
    }
    for (const section of page.layout.sections) {
      if (section.kind === "reserved") showRemaining({ ...section, remaining: free.get(section) || 0 });
    }
    if (lost.length) sayTaken(lost);
    updateChoice();
    scheduleLapse(now);
  }

  function sayTaken(labels) {
    const [seats, were] = labels.length === 1 ? ["seat", "was"] : ["seats", "were"];
    say(`Someone was faster: ${seats} ${labelList(labels)} ${were} just taken. Please choose another.`);
  }

  /** Redraws when the next hold on the map lapses: its seats are free from that instant. */
  function scheduleLapse(now) {
    clearTimeout(live.lapseTimer);
    let next = Infinity;
    for (const [id, until] of live.heldUntil) {
      if (until !== null && until > now && until < next && live.letters.get(id) === "h") next = until;
    }
    if (next !== Infinity) live.lapseTimer = setTimeout(drawSeats, Math.min(next - now + 20, 2 ** 31 - 1));
  }

  function updateChoice() {
    const button = document.getElementById("hold-seats");
    if (!button) return;
    const chosen = [...page.selected].map((id) => page.seats.get(id));
    const total = chosen.reduce((sum, seat) => sum + seat.section.price.amount_minor, 0);
    const summary = document.getElementById("selection-summary");
    summary.textContent = chosen.length
      ? `Your choice: ${labelList(chosen.map((s) => s.label))} · ${bo.money(total, chosen[0].section.price.currency)}`
      : page.hold ? "" : "No seats chosen yet.";
    button.textContent = chosen.length ? `Hold ${plural(chosen.length, "seat", "seats")}` : "Hold seats";
    button.disabled = chosen.length === 0 || !!page.hold;
    for (const form of document.querySelectorAll("form.seat-quantity")) labelQuantityButton(form);
  }

  // ---- the live stream ----------------------------------------------------------------

  function openStream() {
    if (page.stopped || !page.seats.size) return;
    if (live.source) live.source.close();
    const source = new EventSource(`${api}/seats/stream`);
    live.source = source;
    source.addEventListener("open", () => {
      // Back after a break: what was missed follows (deltas, or a snapshot).
      if (live.received) setStreamStatus("Seats update live.");
    });
    source.addEventListener("snapshot", (event) => {
      applySnapshot(JSON.parse(event.data));
      live.reconnectDelay = 1000;
      setStreamStatus("Seats update live.");
    });
    source.addEventListener("changes", (event) => {
      const delta = JSON.parse(event.data);
      if (delta.from !== live.position) return openStream(); // A gap: start again from a snapshot.
      applyChanges(delta);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the server refused the stream): we try again, slower each time.
        setStreamStatus("Live updates are interrupted; reconnecting…");
        setTimeout(() => { if (live.source === source) openStream(); }, live.reconnectDelay);
        live.reconnectDelay = Math.min(live.reconnectDelay * 2, 30000);
      } else if (live.received) {
        setStreamStatus("Live updates are interrupted; reconnecting…");
      }
    });
  }

  function setStreamStatus(text) {
    const status = document.getElementById("stream-status");
    if (status && status.textContent !== text) status.textContent = text;
  }

  function applySnapshot(snapshot) {
    const ids = [...page.seats.keys()].sort((a, b) => a - b);
    live.letters.clear();
    live.heldUntil.clear();
    ids.forEach((id, i) => live.letters.set(id, snapshot.states[i] || "h"));
    for (const [until, held] of snapshot.held_until) for (const id of held) live.heldUntil.set(id, until);
    live.kept = new Set(snapshot.kept_for_waitlist);
    live.position = snapshot.position;
    live.received = true;
    drawSeats();
  }

  function applyChanges(delta) {
    for (const [id, letter, until] of delta.seats) {
      live.letters.set(id, letter);
      live.heldUntil.set(id, until);
    }
    live.kept = new Set(delta.kept_for_waitlist);
    live.position = delta.position;
    drawSeats();
    setStreamStatus("Seats update live.");
  }

  // ---- keyboard and pointer ------------------------------------------------------------

  function seatOf(node) {
    const cell = node.closest && node.closest("[data-seat]");
    return cell ? page.seatsByLabel.get(cell.dataset.seat) : null;
  }

  function makeRoving(seat) {
    if (page.roving === seat) return;
    if (page.roving) page.roving.el.tabIndex = -1;
    seat.el.tabIndex = 0;
    page.roving = seat;
  }

  function moveTo(seat) {
    if (!seat) return;
    makeRoving(seat);
    seat.el.focus();
  }

  function seatInRow(rowIndex, column) {
    const row = page.rows[rowIndex];
    if (!row || !row.seats.length) return null;
    return row.seats[Math.min(column, row.seats.length - 1)];
  }

  function onMapKey(event) {
    const seat = seatOf(event.target);
    if (!seat) return;
    const { row, column } = seat;
    const lastRow = page.rows.length - 1;
    let target;
    switch (event.key) {
      case "ArrowRight": target = row.seats[column + 1]; break;
      case "ArrowLeft": target = row.seats[column - 1]; break;
      case "ArrowDown": target = seatInRow(row.index + 1, column); break;
      case "ArrowUp": target = seatInRow(row.index - 1, column); break;
      case "Home": target = event.ctrlKey ? seatInRow(0, 0) : row.seats[0]; break;
      case "End": target = event.ctrlKey ? seatInRow(lastRow, Infinity) : row.seats[row.seats.length - 1]; break;
      case "PageDown": target = seatInRow(Math.min(row.index + 5, lastRow), column); break;
      case "PageUp": target = seatInRow(Math.max(row.index - 5, 0), column); break;
      case "Enter":
      case " ":
        event.preventDefault();
        toggle(seat);
        return;
      default:
        return;
    }
    event.preventDefault();
    moveTo(target);
  }

  function onMapClick(event) {
    const seat = seatOf(event.target);
    if (!seat) return;
    moveTo(seat);
    toggle(seat);
  }

  function toggle(seat) {
    if (!live.received) return say("The seats are still loading; one moment.");
    const state = stateOf(seat, Date.now());
    if (page.selected.has(seat.id)) {
      page.selected.delete(seat.id);
      say("");
    } else if (state === "mine") {
      return say(`Seat ${seat.label} is already in your hold.`);
    } else if (state !== "available") {
      return say(`Seat ${seat.label} is taken (${STATE_WORDS[state]}). Please choose another.`);
    } else if (page.hold) {
      return say("You are holding seats already. Continue to checkout, or release them to choose others.");
    } else if (page.selected.size >= page.details.max_per_order) {
      return say(`You can choose at most ${plural(page.details.max_per_order, "seat", "seats")} per order.`);
    } else {
      page.selected.add(seat.id);
      say("");
    }
    drawSeats();
  }

  // ---- holding ------------------------------------------------------------------------

  /** Places an order, retrying what the API says to retry with the same idempotency key. */
  async function postHold(body) {
    const headers = { "Idempotency-Key": idempotencyKey() };
    for (let attempt = 0; ; attempt++) {
      try {
        return await bo.gateway("POST", `${api}/holds`, { body, token: page.token, headers });
      } catch (error) {
        if (!retryable(error) || attempt >= 3 || error.retryAfter > 5) throw error;
        await sleep(backoff(error, attempt));
      }
    }
  }

  /** Why an order failed, in words: the API's message, or what a lost connection means here. */
  function orderFailure(error, what) {
    if (!(error instanceof bo.ApiError)) return `We could not hold those ${what}. Please try again.`;
    if (error.status === 0) return "We could not reach boxoffice, so nothing was held. Check your connection and try again.";
    return error.message;
  }

  function setBusy(busy) {
    if (!busy) return updateChoice();
    for (const button of document.querySelectorAll("#hold-seats, form.seat-quantity button")) button.disabled = true;
  }

  async function holdSelected() {
    const labels = [...page.selected].map((id) => page.seats.get(id).label);
    if (!labels.length) return;
    const button = document.getElementById("hold-seats");
    setBusy(true);
    button.textContent = "Holding…";
    try {
      const hold = await postHold({ seats: labels });
      page.selected.clear();
      showHold(hold, true);
    } catch (error) {
      if (handledAsAccess(error)) return;
      if (error.code === "seat_unavailable" || error.code === "seat_contended") {
        someoneWasFaster(error, labels);
      } else {
        say(orderFailure(error, "seats"));
      }
    } finally {
      if (!page.stopped) setBusy(false);
    }
  }

  /** A chosen seat went to someone else between the map and the order. */
  function someoneWasFaster(error, labels) {
    const named = labels.find((label) => `${error.message} `.includes(`seat ${label} `));
    const taken = named ? [named] : labels.filter((label) => stateOf(page.seatsByLabel.get(label), Date.now()) !== "available");
    if (!taken.length) {
      return say("Another fan is taking one of these seats right now. Please try again in a moment.");
    }
    for (const label of taken) {
      const seat = page.seatsByLabel.get(label);
      page.selected.delete(seat.id);
      // Shown taken now; the stream's next word on the seat replaces this guess.
      if (stateOf(seat, Date.now()) === "available") {
        live.letters.set(seat.id, "h");
        live.heldUntil.set(seat.id, null);
      }
    }
    drawSeats();
    sayTaken(taken);
  }

  async function holdQuantity(section, quantity, noun) {
    if (page.hold) return say("You are holding seats already. Continue to checkout, or release them to choose others.");
    setBusy(true);
    try {
      const hold = await postHold({ section_id: section.id, quantity });
      showHold(hold, true);
    } catch (error) {
      if (handledAsAccess(error)) return;
      if (error.code === "seat_contended") {
        say(`Other fans are taking ${noun[1]} in ${section.name} right now. Please try again in a moment.`);
      } else {
        say(orderFailure(error, noun[1]));
      }
      refreshDetails();
    } finally {
      if (!page.stopped) setBusy(false);
    }
  }

  // ---- the hold -------------------------------------------------------------------------

  async function resumeHold() {
    const holdId = sessionStorage.getItem(holdKey);
    if (!holdId) return holdAgainAfterReload();
    try {
      const hold = await bo.gateway("GET", `${api}/holds/${holdId}`, { token: page.token });
      if (hold.status === "active" && Date.parse(hold.expires_at) > Date.now()) return showHold(hold, false);
      sessionStorage.removeItem(holdKey);
      if (hold.status === "confirmed") say("Your earlier hold is booked already.");
      else say("Your earlier hold has ended; its seats went back on sale.");
    } catch (error) {
      if (handledAsAccess(error)) return;
      if (error.status === 404) sessionStorage.removeItem(holdKey);
      else say(problem(error));
    }
  }

  /**
   * Leaving the page released the hold (below), and a reload is leaving too: the page
   * cannot tell it from closing the tab. The same tab back within seconds (its session
   * storage survives a reload, not a closed tab) holds the same places again at once.
   */
  async function holdAgainAfterReload() {
    const released = JSON.parse(sessionStorage.getItem(releasedKey) || "null");
    sessionStorage.removeItem(releasedKey);
    if (!released || Date.now() - released.at > RELOAD_GRACE_MS) return;
    try {
      showHold(await holdReleasedPlaces(released.order), false);
      say("We held your places again after the page reloaded.");
    } catch (error) {
      if (handledAsAccess(error)) return;
      if (error.code === "seat_unavailable" || error.code === "seat_contended") {
        say("While the page reloaded, another fan took some of the places you held. Please choose again.");
      } else {
        say(orderFailure(error, "places"));
      }
    }
  }

  /** The leaving page's release may still be on its way: its places are ours until then. */
  async function holdReleasedPlaces(order) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await postHold(order);
      } catch (error) {
        if (error.code !== "seat_unavailable" || attempt >= 2) throw error;
        await sleep(700);
      }
    }
  }

  /** The order that makes the same hold again: its seats by label, or its quantity. */
  function orderOf(hold) {
    const labels = hold.seats.map((seat) => seat.label);
    if (labels.every(Boolean)) return { seats: labels };
    return { section_id: hold.seats[0].section_id, quantity: hold.seats.length };
  }

  function describeHoldSeats(hold) {
    const items = [];
    const general = new Map();
    for (const seat of hold.seats) {
      const section = page.layout.sections.find((s) => s.id === seat.section_id);
      const sectionName = section ? section.name : "";
      if (seat.label) {
        const known = page.seatsByLabel.get(seat.label);
        items.push(bo.el("li", {}, `${sectionName} · ${known ? seatPlace(known) : `Seat ${seat.label}`}`));
      } else {
        general.set(sectionName, (general.get(sectionName) || 0) + 1);
      }
    }
    for (const [name, count] of general) items.push(bo.el("li", {}, `${name} · ${plural(count, "place", "places")}`));
    return bo.el("ul", { class: "hold-seats" }, items);
  }

  function showHold(hold, justMade) {
    page.hold = hold;
    page.holdSeatIds = new Set(hold.seats.filter((s) => s.label).map((s) => s.seat_id));
    sessionStorage.setItem(holdKey, hold.id);
    const paid = hold.total.amount_minor > 0;
    const next = paid
      ? bo.el("a", { id: "to-checkout", class: "button", href: `/e/${eventId}/checkout/${hold.id}`,
        onclick: () => { page.leavingWithHold = true; } }, "Continue to checkout")
      : bo.el("button", { id: "confirm-hold", type: "button", onclick: confirmFreeHold }, "Book these places");
    const section = bo.el("section", { id: "hold", class: "card hold", "aria-labelledby": "hold-title" },
      bo.el("h2", { id: "hold-title", tabindex: "-1" }, "Your places are held"),
      describeHoldSeats(hold),
      bo.el("p", {}, "Total: ", bo.el("strong", {}, bo.money(hold.total.amount_minor, hold.total.currency))),
      bo.el("p", { id: "hold-countdown", "aria-live": "polite" },
        bo.el("span", { "aria-hidden": "true", id: "hold-clock" }),
        bo.el("span", { class: "visually-hidden", id: "hold-minutes" })),
      bo.el("p", { class: "muted", id: "hold-cap" }),
      bo.el("div", { class: "hold-actions" }, next,
        bo.el("button", { id: "release-hold", type: "button", class: "secondary", onclick: releaseHold }, "Release")));
    document.getElementById("hold-slot").replaceChildren(section);
    drawSeats();
    say("");
    tickCountdown();
    clearInterval(timers.countdown);
    timers.countdown = setInterval(tickCountdown, 1000);
    startHeartbeats();
    if (justMade) document.getElementById("hold-title").focus();
  }

  function tickCountdown() {
    if (!page.hold) return;
    const left = (Date.parse(page.hold.expires_at) - Date.now()) / 1000;
    if (left <= 0) return checkHoldEnded();
    document.getElementById("hold-clock").textContent = `Held for ${bo.clock(left)}`;
    // Read out only when the whole minutes change: a screen reader is not told every second.
    const minutes = Math.ceil(left / 60);
    const spoken = document.getElementById("hold-minutes");
    const words = minutes === 1 ? "Less than a minute left to continue." : `About ${minutes} minutes left to continue.`;
    if (spoken.dataset.minutes !== String(minutes)) {
      spoken.dataset.minutes = String(minutes);
      spoken.textContent = words;
    }
  }

  async function checkHoldEnded() {
    clearInterval(timers.countdown);
    const hold = page.hold;
    try {
      const now = await bo.gateway("GET", `${api}/holds/${hold.id}`, { token: page.token });
      if (now.status === "active" && Date.parse(now.expires_at) > Date.now()) return showHold(now, false);
    } catch (error) {
      if (handledAsAccess(error)) return;
    }
    endHold("Your hold has ended and its seats went back on sale. You can choose again.");
  }

  function startHeartbeats() {
    clearInterval(timers.heartbeat);
    // Often enough that an open page never shows its minutes running down, except at the cap.
    const every = Math.max(5, Math.min(30, page.details.hold_ttl_seconds / 4)) * 1000;
    heartbeat();
    timers.heartbeat = setInterval(heartbeat, every);
  }

  async function heartbeat() {
    const hold = page.hold;
    if (!hold) return;
    try {
      const beat = await bo.gateway("POST", `${api}/holds/${hold.id}/heartbeat`, { token: page.token });
      if (page.hold !== hold) return;
      hold.expires_at = beat.expires_at;
      const cap = new Date(beat.latest_expires_at).toLocaleTimeString(undefined, { timeStyle: "short" });
      document.getElementById("hold-cap").textContent =
        `We keep them while this page is open, until ${cap} at the latest.`;
      if (!beat.extended && beat.expires_at === beat.latest_expires_at) clearInterval(timers.heartbeat);
      tickCountdown();
    } catch (error) {
      if (handledAsAccess(error)) return;
      if (error.status === 404 || error.status === 409 || error.status === 410) {
        endHold("Your hold has ended and its seats went back on sale. You can choose again.");
      }
      // Anything else (the network, a busy server): the next heartbeat tries again.
    }
  }

  function endHold(message) {
    clearInterval(timers.countdown);
    clearInterval(timers.heartbeat);
    sessionStorage.removeItem(holdKey);
    page.hold = null;
    page.holdSeatIds = new Set();
    const slot = document.getElementById("hold-slot");
    if (slot) slot.replaceChildren();
    drawSeats();
    say(message);
    refreshDetails();
  }

  async function releaseHold() {
    const hold = page.hold;
    const button = document.getElementById("release-hold");
    button.disabled = true;
    try {
      await bo.gateway("DELETE", `${api}/holds/${hold.id}`, { token: page.token });
      // Free on this map at once; the stream's next word on these seats replaces this.
      for (const seat of hold.seats) {
        if (live.letters.get(seat.seat_id) === "h") live.letters.set(seat.seat_id, "a");
      }
      endHold("You released your places; they are back on sale.");
      if (page.roving) page.roving.el.focus();
    } catch (error) {
      if (handledAsAccess(error)) return;
      if (error.code === "hold_not_active") endHold("This hold was booked already.");
      else {
        button.disabled = false;
        say(problem(error));
      }
    }
  }

  async function confirmFreeHold() {
    const hold = page.hold;
    const button = document.getElementById("confirm-hold");
    button.disabled = true;
    try {
      const booking = await bo.gateway("POST", `${api}/holds/${hold.id}/confirm`, { token: page.token });
      page.leavingWithHold = true;
      sessionStorage.removeItem(holdKey);
      const link = booking.link ? `?link=${encodeURIComponent(booking.link)}` : "";
      location.assign(`/e/${eventId}/bookings/${booking.id}${link}`);
    } catch (error) {
      if (handledAsAccess(error)) return;
      button.disabled = false;
      if (error.code === "hold_expired" || error.code === "hold_not_active") endHold(error.message);
      else say(problem(error));
    }
  }

  // A fan leaving the page gives the places back at once (a beacon cannot send headers:
  // the token travels in the body). Going on to checkout keeps them.
  window.addEventListener("pagehide", () => {
    if (!page.hold || page.leavingWithHold) return;
    navigator.sendBeacon(`${api}/holds/${page.hold.id}/release`, JSON.stringify({ access_token: page.token }));
    sessionStorage.setItem(releasedKey, JSON.stringify({ order: orderOf(page.hold), at: Date.now() }));
    sessionStorage.removeItem(holdKey);
  });

  window.addEventListener("pageshow", (event) => {
    if (!event.persisted || page.stopped) return;
    page.leavingWithHold = false;
    if (page.hold) checkHoldEnded();
    openStream();
  });

  // ---- the waitlist ---------------------------------------------------------------------

  function showWaitlistOnly() {
    stopPicker();
    page.seats.clear();
    bo.render(
      eventLine(),
      bo.el("p", { class: "notice" },
        "Everything was sold or held by the time your turn came. Your pass lets you join the waitlist: if places come back, they are offered in the order fans joined."),
      bo.el("p", { id: "seat-message", role: "alert", class: "seat-message", hidden: true }),
      bo.el("div", { id: "waitlist-slot" }),
    );
    showWaitlistEntryOrOffer();
  }

  async function showWaitlistEntryOrOffer() {
    const slot = document.getElementById("waitlist-slot");
    if (!slot) return;
    let entry = null;
    try {
      entry = await bo.gateway("GET", `${api}/waitlist/me`, { token: page.token });
    } catch (error) {
      if (handledAsAccess(error)) return;
      if (error.code !== "waitlist_entry_not_found") return slot.replaceChildren(bo.errorBox(error));
    }
    const active = entry && (entry.status === "waiting" || entry.status === "offered");
    if (active) return slot.replaceChildren(waitlistEntryCard(entry));
    const waitlistOnly = !document.getElementById("seat-map");
    const someSoldOut = page.details.sections.some((s) => s.remaining === 0);
    if (page.details.waitlist_enabled && someSoldOut && (nothingForSale() || waitlistOnly)) {
      slot.replaceChildren(waitlistForm());
    } else if (waitlistOnly) {
      slot.replaceChildren(bo.el("p", { class: "notice" }, page.details.waitlist_enabled
        ? "Places are on sale again, but your pass only lets you join a waitlist. Join the queue again to buy them."
        : "This event has no waitlist. Sorry: nothing is left for sale."),
      bo.el("p", {}, bo.el("a", { href: waitingPage }, "Back to the queue")));
    }
  }

  function waitlistForm() {
    const soldOut = page.details.sections.filter((s) => s.remaining === 0);
    const limit = page.details.max_per_order;
    const message = bo.el("p", { role: "alert", class: "seat-message", hidden: true });
    const form = bo.el("form", { class: "waitlist-form" },
      bo.el("fieldset", {},
        bo.el("legend", {}, "Sections you would take (the first listed is preferred)"),
        soldOut.map((section) => bo.el("label", { class: "checkbox" },
          bo.el("input", { type: "checkbox", name: "section", value: section.id, checked: true }),
          ` ${section.name} · ${priceOf(section)}`))),
      bo.el("label", { for: "waitlist-quantity" }, "How many places"),
      bo.el("select", { id: "waitlist-quantity", name: "quantity" },
        Array.from({ length: limit }, (_, i) => bo.el("option", { value: i + 1 }, i + 1))),
      bo.el("label", { class: "checkbox" },
        bo.el("input", { type: "checkbox", name: "partial" }), " I also take fewer places if that is all that comes back"),
      bo.el("label", { for: "waitlist-email" }, "Email for the offer (optional)"),
      bo.el("input", { id: "waitlist-email", type: "email", name: "email", autocomplete: "email" }),
      message,
      bo.el("p", {}, bo.el("button", { type: "submit" }, "Join the waitlist")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const sections = [...form.querySelectorAll('input[name="section"]:checked')].map((box) => box.value);
      const email = form.email.value.trim();
      message.hidden = true;
      if (!sections.length) {
        message.hidden = false;
        message.textContent = "Tick at least one section.";
        return;
      }
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      try {
        const entry = await bo.gateway("POST", `${api}/waitlist`, { token: page.token, body: {
          quantity: Number(form.quantity.value), section_ids: sections, allow_partial: form.partial.checked,
          email: email || undefined } });
        form.closest("section").replaceWith(waitlistEntryCard(entry));
      } catch (error) {
        if (handledAsAccess(error)) return;
        button.disabled = false;
        message.hidden = false;
        message.textContent = problem(error);
      }
    });
    return bo.el("section", { id: "waitlist", class: "card", "aria-labelledby": "waitlist-title" },
      bo.el("h2", { id: "waitlist-title" }, "Join the waitlist"),
      bo.el("p", {}, nothingForSale() ? "Nothing is for sale right now. " : "Some sections are sold out. ",
        "If places come back (a fan cancels, or a hold lapses), they are offered to the waitlist in the order fans joined, and held for you for ",
        `${plural(Math.max(1, Math.round(page.details.waitlist_offer_ttl_secs / 60)), "minute", "minutes")}.`),
      form);
  }

  function waitlistEntryCard(entry) {
    clearInterval(timers.waitlist);
    const body = [];
    if (entry.status === "offered") {
      const until = new Date(entry.offer.expires_at).toLocaleTimeString(undefined, { timeStyle: "short" });
      body.push(bo.el("p", { class: "notice" }, `Places came back for you! They are held until ${until}.`),
        bo.el("p", {}, bo.el("a", { class: "button", id: "offer-checkout",
          href: `/e/${eventId}/checkout/${entry.offer.hold_id}` }, "Take the offer: continue to checkout")));
    } else {
      body.push(bo.el("p", {}, `You are on the waitlist for ${plural(entry.quantity, "place", "places")}`,
        entry.position ? `, number ${entry.position} in line.` : "."),
      bo.el("p", { class: "muted" }, "Keep this page open or come back later: an offer shows here."));
      timers.waitlist = setInterval(refreshWaitlistEntry, 15000);
    }
    body.push(bo.el("p", {}, bo.el("button", { type: "button", class: "secondary", onclick: leaveWaitlist },
      entry.status === "offered" ? "Decline and leave the waitlist" : "Leave the waitlist")));
    return bo.el("section", { id: "waitlist", class: "card", "aria-labelledby": "waitlist-title",
      "data-standing": `${entry.status} ${entry.position}` },
      bo.el("h2", { id: "waitlist-title" }, "Your place on the waitlist"),
      bo.el("div", { role: "status" }, body));
  }

  async function refreshWaitlistEntry() {
    try {
      const entry = await bo.gateway("GET", `${api}/waitlist/me`, { token: page.token });
      const card = document.getElementById("waitlist");
      // Redrawn only when something changed, so a focused button is not pulled away.
      if (card.dataset.standing === `${entry.status} ${entry.position}`) return;
      if (entry.status === "waiting" || entry.status === "offered") card.replaceWith(waitlistEntryCard(entry));
      else {
        clearInterval(timers.waitlist);
        say(entry.status === "expired" ? "Your waitlist offer ran out." : "You are no longer on the waitlist.");
        card.remove();
        await showWaitlistAfresh();
      }
    } catch (error) {
      handledAsAccess(error); // Otherwise the next poll tries again.
    }
  }

  /** What the waitlist offers now that the fan's entry ended: read with fresh counts. */
  async function showWaitlistAfresh() {
    await refreshDetails();
    if (!document.getElementById("waitlist")) await showWaitlistEntryOrOffer();
  }

  async function leaveWaitlist() {
    try {
      await bo.gateway("DELETE", `${api}/waitlist/me`, { token: page.token });
      clearInterval(timers.waitlist);
      say("You left the waitlist.");
      document.getElementById("waitlist").remove();
      await showWaitlistAfresh();
    } catch (error) {
      if (!handledAsAccess(error)) say(problem(error));
    }
  }

  start().catch((error) => bo.render(bo.errorBox(error)));
})();
