"use strict";
// Checkout of a hold (issue 17): the order, the refund policy, the hold's countdown kept
// up by heartbeats while the page is open (README "An open page's hold"), then paying on
// the provider's page, which sends the fan back here with `?payment_intent=…&
// redirect_status=…`, or confirming a free hold. Coming back, the page asks for the
// payment's outcome (README "Checkout and payments": the gateway asks the provider when
// its webhook is late) until the places are booked, refunded or declined.
//
// A waitlist offer's link (`?link=…`) stands in for the access token (README
// "Waitlist"); such a hold is the organizer's to time, so no heartbeats.

(() => {
  const [eventId, , holdId] = bo.pathIds();
  const api = `/v1/events/${eventId}`;
  const params = new URLSearchParams(location.search);
  const offerLink = params.get("link");
  const linkQuery = offerLink ? `?link=${encodeURIComponent(offerLink)}` : "";
  /** Where the payment page sends the fan back to: this page, without a past payment's outcome. */
  const thisPage = `${location.origin}${location.pathname}${linkQuery}`;
  const seatsPage = `/e/${eventId}/seats`;
  /** How long a fan back from paying waits for the outcome before being told to check later. */
  const CONFIRM_PATIENCE_MS = 60000;

  const page = {
    token: offerLink ? null : bo.token(eventId),
    event: null,
    places: new Map(),
    hold: null,
    latestExpiry: null,
    generation: 0,
  };
  const timers = { countdown: null, heartbeat: null };

  // ---- calls ---------------------------------------------------------------------------

  const holdPath = (suffix = "") => `${api}/holds/${holdId}${suffix}${linkQuery}`;
  const credentials = () => ({ token: page.token });

  /** A hold call tried again while the server is busy or out of reach, saying so meanwhile. */
  const persist = (method, suffix) =>
    orders.persist(method, holdPath(suffix), credentials(), (error) => say(`${error.message} Trying again…`));

  // ---- what the fan sees ---------------------------------------------------------------

  function say(text) {
    const status = document.getElementById("checkout-status");
    if (status) orders.announce(status, text);
  }

  function stopTimers() {
    clearInterval(timers.countdown);
    clearInterval(timers.heartbeat);
  }

  /** A new view: timers of the last one stopped, any wait it started abandoned. */
  function show(...nodes) {
    stopTimers();
    page.generation++;
    bo.render(bo.el("p", { id: "checkout-status", role: "status", class: "muted" }), nodes.filter(Boolean));
  }

  const backToSeats = (text = "Back to the seats") =>
    bo.el("p", {}, bo.el("a", { class: "button", href: seatsPage }, text));

  function focusHeading(id) {
    const heading = document.getElementById(id);
    if (heading) heading.focus();
  }

  function eventLine() {
    return bo.el("p", { class: "order-event" },
      bo.el("strong", {}, page.event.name), bo.el("br"), bo.dateTime(page.event.starts_at));
  }

  /** Each reserved seat with its price, and general admission as a count per section. */
  function placesList(seats) {
    const sections = new Map(page.event.sections.map((s) => [s.id, s]));
    const items = [];
    const general = new Map();
    for (const seat of seats) {
      const section = sections.get(seat.section_id);
      if (seat.label) {
        items.push(bo.el("li", {},
          bo.el("span", {}, `${section ? section.name : ""} · ${orders.placeName(page.places, seat.section_id, seat.label)}`),
          section ? bo.el("span", {}, bo.money(section.price.amount_minor, section.price.currency)) : null));
      } else {
        general.set(seat.section_id, (general.get(seat.section_id) || 0) + 1);
      }
    }
    for (const [sectionId, count] of general) {
      const section = sections.get(sectionId);
      items.push(bo.el("li", {},
        bo.el("span", {}, `${section ? section.name : "General admission"} · ${count} ${count === 1 ? "place" : "places"}`),
        section ? bo.el("span", {}, bo.money(section.price.amount_minor * count, section.price.currency)) : null));
    }
    return bo.el("ul", { class: "order-places" }, items);
  }

  function policySection() {
    return bo.el("section", { class: "card", "aria-labelledby": "policy-title" },
      bo.el("h2", { id: "policy-title" }, "Cancellation and refunds"),
      bo.el("p", { id: "refund-policy" }, orders.policyInWords(page.event)));
  }

  // ---- the order -----------------------------------------------------------------------

  /** The hold, with its countdown and the way to pay or confirm; `notice` says why the fan is here again. */
  function showOrder(hold, notice) {
    page.hold = hold;
    const paid = hold.total.amount_minor > 0;
    const total = bo.money(hold.total.amount_minor, hold.total.currency);
    const action = paid
      ? bo.el("button", { id: "pay", type: "button", onclick: pay }, `Pay ${total}`)
      : bo.el("button", { id: "confirm", type: "button", onclick: confirmFree }, "Confirm");
    show(
      notice ? bo.el("p", { class: "error", role: "alert" }, notice) : null,
      bo.el("section", { class: "card", "aria-labelledby": "order-title" },
        bo.el("h2", { id: "order-title", tabindex: "-1" }, "Your order"),
        eventLine(),
        placesList(hold.seats),
        bo.el("p", { class: "order-total" }, "Total: ", bo.el("strong", {}, paid ? total : "Free"))),
      bo.el("p", { id: "hold-countdown", "aria-live": "polite" },
        bo.el("span", { id: "hold-clock", "aria-hidden": "true" }),
        bo.el("span", { id: "hold-minutes", class: "visually-hidden" })),
      bo.el("p", { id: "hold-cap", class: "muted" }),
      policySection(),
      bo.el("p", { id: "checkout-error", class: "error", role: "alert", hidden: true }),
      bo.el("div", { class: "order-actions" }, action,
        bo.el("button", { id: "release", type: "button", class: "secondary", onclick: release }, "Release these places")),
      paid ? bo.el("p", { class: "muted" }, "You pay on our payment provider's page, then come back here.") : null,
    );
    tickCountdown();
    timers.countdown = setInterval(tickCountdown, 1000);
    if (!offerLink) startHeartbeats();
  }

  function showError(error) {
    const box = document.getElementById("checkout-error");
    if (!box) return show(bo.errorBox(error), backToSeats());
    box.hidden = false;
    orders.announce(box, error instanceof bo.ApiError ? error.message : "Something went wrong. Please try again.");
  }

  function tickCountdown() {
    const clock = document.getElementById("hold-clock");
    if (!page.hold || !clock) return;
    const left = (Date.parse(page.hold.expires_at) - Date.now()) / 1000;
    if (left <= 0) {
      clearInterval(timers.countdown);
      return recheckHold();
    }
    clock.textContent = `Your places are held for ${bo.clock(left)}`;
    // Said at each whole minute only: a screen reader is not read every second.
    const minutes = Math.ceil(left / 60);
    const spoken = document.getElementById("hold-minutes");
    if (spoken.dataset.minutes !== String(minutes)) {
      spoken.dataset.minutes = String(minutes);
      const task = page.hold.total.amount_minor > 0 ? "pay for" : "confirm";
      spoken.textContent = minutes === 1
        ? `Less than a minute left to ${task} your places.`
        : `About ${minutes} minutes left to ${task} your places.`;
    }
  }

  function startHeartbeats() {
    // Often enough that an open page never sees its minutes run down, except at the cap.
    const every = Math.max(5, Math.min(30, page.event.hold_ttl_seconds / 4)) * 1000;
    heartbeat();
    timers.heartbeat = setInterval(heartbeat, every);
  }

  async function heartbeat() {
    const generation = page.generation;
    try {
      const beat = await bo.gateway("POST", holdPath("/heartbeat"), credentials());
      if (generation !== page.generation) return;
      page.hold.expires_at = beat.expires_at;
      const cap = new Date(beat.latest_expires_at).toLocaleTimeString(undefined, { timeStyle: "short" });
      const note = document.getElementById("hold-cap");
      if (note) note.textContent = `We keep them while this page is open, until ${cap} at the latest.`;
      if (!beat.extended && beat.expires_at === beat.latest_expires_at) clearInterval(timers.heartbeat);
      tickCountdown();
    } catch (error) {
      if (generation !== page.generation) return;
      if (orders.isAccessRefusal(error)) return showAccessEnded(error);
      if (error.status === 404 || error.status === 409 || error.status === 410) return recheckHold();
      // Anything else (the network, a busy server): the next heartbeat tries again.
    }
  }

  /** The countdown ran out or a heartbeat was refused: what became of the hold? */
  async function recheckHold() {
    try {
      settleHold(await persist("GET", ""));
    } catch (error) {
      showRefusal(error);
    }
  }

  // ---- paying --------------------------------------------------------------------------

  async function pay() {
    const button = document.getElementById("pay");
    button.disabled = true;
    say("Taking you to the payment page…");
    try {
      const attempt = await persist("POST", "/checkout");
      if (attempt.status === "succeeded") return waitForPayment();
      if (!attempt.payment_page_url) {
        throw new bo.ApiError(0, "no_payment_page", "Paying here is not possible right now. Please try again later.");
      }
      stopTimers();
      const separator = attempt.payment_page_url.includes("?") ? "&" : "?";
      location.assign(`${attempt.payment_page_url}${separator}return_url=${encodeURIComponent(thisPage)}`);
    } catch (error) {
      orderRefused(error, button);
    }
  }

  /** A checkout or confirmation refused: the access gone, the hold ended, or a reason to show. */
  function orderRefused(error, button) {
    say("");
    if (orders.isAccessRefusal(error)) return showAccessEnded(error);
    if (error.code === "hold_expired" || error.code === "hold_not_active" || error.code === "hold_not_found") {
      return recheckHold();
    }
    button.disabled = false;
    showError(error);
  }

  async function confirmFree() {
    const button = document.getElementById("confirm");
    button.disabled = true;
    say("Booking your places…");
    try {
      showConfirmation(await persist("POST", "/confirm"));
    } catch (error) {
      orderRefused(error, button);
    }
  }

  async function release() {
    const button = document.getElementById("release");
    button.disabled = true;
    try {
      await persist("DELETE", "");
      showEnded("You released your places; they are back on sale.");
    } catch (error) {
      if (orders.isAccessRefusal(error)) return showAccessEnded(error);
      if (error.code === "hold_not_active" || error.code === "hold_expired") return recheckHold();
      button.disabled = false;
      showError(error);
    }
  }

  /**
   * Back from the payment page (or a pay that found the hold paid): asks for the payment's
   * outcome with backoff for about a minute, until it is final.
   */
  async function waitForPayment() {
    show(
      bo.el("section", { class: "card", "aria-labelledby": "confirming-title" },
        bo.el("h2", { id: "confirming-title", tabindex: "-1" }, "Confirming your payment…"),
        bo.el("p", {}, "This usually takes a few seconds. Please keep this page open."),
        bo.el("progress", { "aria-labelledby": "confirming-title" })),
    );
    focusHeading("confirming-title");
    const generation = page.generation;
    const deadline = Date.now() + CONFIRM_PATIENCE_MS;
    for (let attempt = 0; generation === page.generation; attempt++) {
      let wait = Math.min(8000, 1000 * 1.5 ** attempt);
      try {
        const payment = await bo.gateway("GET", holdPath("/payment"), credentials());
        if (generation !== page.generation) return;
        if (await settlePayment(payment)) return;
      } catch (error) {
        if (generation !== page.generation) return;
        if (orders.isAccessRefusal(error)) return showAccessEnded(error, true);
        if (error.code === "payment_not_found") return recheckHold();
        if (!orders.retryable(error)) return showStillWaiting(error);
        say(`${error.message} Trying again…`);
        wait = orders.backoff(error, attempt);
      }
      if (Date.now() + wait > deadline) return showStillWaiting();
      await orders.sleep(wait);
    }
  }

  /** Shows a payment's outcome when it has one; false while it is still under way. */
  async function settlePayment(payment) {
    if (payment.booking_id) {
      const note = payment.resolution === "late_booked"
        ? "Your payment arrived after your hold had ended, but your places were still free: they are booked for you."
        : null;
      showConfirmation(await bookingOf(payment.booking_id), note);
      return true;
    }
    const amount = bo.money(payment.amount.amount_minor, payment.amount.currency);
    if (payment.resolution === "refunded" || payment.status === "refunded" || payment.status === "partially_refunded") {
      const why = page.event.cancelled_at
        ? "The organizer cancelled this event, so nothing was booked."
        : "Your payment arrived after your hold had ended and its places were taken, so nothing was booked.";
      showEnded(`${why} Your payment of ${amount} has been refunded in full; refunds can take a few days to reach your account.`);
      return true;
    }
    if (payment.status === "failed") {
      const words = declineWords(payment.failure_code);
      const holdLives = payment.hold_status === "active" && Date.parse(payment.hold_expires_at) > Date.now();
      if (!holdLives) showEnded(`${words} Your hold has ended, so its places went back on sale.`);
      else showOrder({ ...page.hold, status: "active", expires_at: payment.hold_expires_at }, `${words} Nothing was charged. You can pay again with another card.`);
      return true;
    }
    if (payment.status === "canceled") {
      showEnded("This payment was canceled and nothing was charged. Your hold has ended, so its places went back on sale.");
      return true;
    }
    return false;
  }

  function declineWords(code) {
    const words = {
      insufficient_funds: "Your card has insufficient funds.",
      expired_card: "Your card has expired.",
      incorrect_cvc: "Your card's security code was not accepted.",
      incorrect_number: "Your card number was not accepted.",
    };
    return words[code] || "Your payment was declined.";
  }

  /** The booking a payment or a confirm made, with its link: read by the fan's token, or confirmed again through an offer's link. */
  async function bookingOf(bookingId) {
    if (page.token) return orders.persist("GET", `${api}/bookings/${bookingId}`, credentials());
    return persist("POST", "/confirm");
  }

  function showStillWaiting(error) {
    show(
      bo.el("section", { class: "card", "aria-labelledby": "waiting-title" },
        bo.el("h2", { id: "waiting-title", tabindex: "-1" }, "We are still waiting for your payment's outcome"),
        error ? bo.errorBox(error) : null,
        bo.el("p", {}, "If your payment went through, your places are booked and a confirmation follows. If it did not, nothing was charged."),
        bo.el("p", {}, bo.el("button", { type: "button", onclick: waitForPayment }, "Check again"))),
    );
    focusHeading("waiting-title");
  }

  // ---- the ends ------------------------------------------------------------------------

  function showConfirmation(booking, note) {
    history.replaceState(null, "", thisPage);
    const ticketsHref = `/e/${eventId}/bookings/${booking.id}${booking.link ? `?link=${encodeURIComponent(booking.link)}` : ""}`;
    const free = booking.total.amount_minor === 0;
    show(
      bo.el("section", { id: "confirmation", class: "card", "aria-labelledby": "confirmation-title" },
        bo.el("h2", { id: "confirmation-title", tabindex: "-1" }, "You are booked!"),
        note ? bo.el("p", { class: "notice" }, note) : null,
        eventLine(),
        placesList(booking.seats),
        bo.el("p", { class: "order-total" }, free ? "Free" : "Paid: ",
          free ? null : bo.el("strong", {}, bo.money(booking.total.amount_minor, booking.total.currency))),
        bo.el("p", {}, orders.policyInWords(page.event)),
        bo.el("p", {}, bo.el("a", { id: "booking-link", class: "button", href: ticketsHref }, "See your tickets")),
        bo.el("p", { class: "muted" }, "Your tickets' page works without signing in: keep its address private, as anyone who has it can see ",
          page.event.refund_policy && page.event.refund_policy.length ? "and cancel your tickets." : "your tickets.")),
    );
    focusHeading("confirmation-title");
  }

  function showEnded(message) {
    history.replaceState(null, "", thisPage);
    const cancelled = Boolean(page.event && page.event.cancelled_at);
    show(
      bo.el("section", { class: "card", "aria-labelledby": "ended-title" },
        bo.el("h2", { id: "ended-title", tabindex: "-1" }, cancelled ? "This event was cancelled" : "This hold has ended"),
        bo.el("p", {}, message)),
      cancelled ? bo.el("p", {}, bo.el("a", { href: "/" }, "See other events")) : backToSeats("Choose seats again"),
    );
    focusHeading("ended-title");
  }

  function showNoAccess() {
    show(
      bo.el("p", { class: "notice" },
        "To check out you need your turn for this event: this browser tab has no pass for it. If you have held places in another tab, finish there."),
      backToSeats(),
    );
  }

  /** The token (or the offer's link) was refused; after paying, say what became of the money. */
  function showAccessEnded(error, afterPayment = false) {
    let why = "Your time to shop has ended (your access expired or is not valid here).";
    if (error.code === "token_revoked") why = "The organizer withdrew your access to this sale.";
    if (error.code === "invalid_link") why = "This offer's link is not valid (it was changed, or it has expired).";
    if (!offerLink) bo.forgetToken(eventId);
    show(
      bo.el("p", { class: "error", role: "alert" }, why),
      bo.el("p", {}, afterPayment
        ? "If your payment went through, your places are booked: your confirmation has the link to your tickets."
        : "Places you held but did not pay for go back on sale when the hold ends."),
      backToSeats(),
    );
  }

  /** A refusal of the hold itself, in words, with the way back. */
  function showRefusal(error) {
    if (orders.isAccessRefusal(error)) return showAccessEnded(error);
    if (error.code === "hold_not_found") {
      return show(
        bo.el("p", { class: "error", role: "alert" },
          "We could not find this hold: it may have been made with another pass, in another browser."),
        backToSeats());
    }
    if (error.code === "hold_expired") return showEnded("Your hold ran out of time and its places went back on sale.");
    show(bo.errorBox(error), backToSeats());
  }

  // ---- loading -------------------------------------------------------------------------

  /** Shows the hold as it is now. */
  async function settleHold(hold) {
    page.hold = hold;
    if (hold.status === "confirmed") return showConfirmation(await persist("POST", "/confirm"));
    if (hold.status === "active" && Date.parse(hold.expires_at) > Date.now()) return showOrder(hold);
    if (hold.total.amount_minor > 0) {
      // A payment may have outlived the hold: booked late, or refunded.
      try {
        if (await settlePayment(await persist("GET", "/payment"))) return undefined;
      } catch (error) {
        if (error.code !== "payment_not_found") return showRefusal(error);
      }
    }
    if (page.event.cancelled_at) return showEnded("The organizer cancelled this event: nothing more is sold, and held places were released.");
    return showEnded(hold.status === "released"
      ? "These places were released and went back on sale."
      : "Your hold ran out of time and its places went back on sale.");
  }

  async function start() {
    if (!page.token && !offerLink) return showNoAccess();
    const loading = document.querySelector("#main .loading");
    const retrying = (error) => { if (loading) loading.textContent = `${error.message} Trying again…`; };
    const [event, layout] = await Promise.all([
      orders.persist("GET", api, {}, retrying),
      orders.persist("GET", `${api}/seats/layout`, {}, retrying).catch(() => null),
    ]);
    page.event = event;
    page.places = orders.seatIndex(layout);
    const hold = await persist("GET", "");
    page.hold = hold;
    const returned = params.get("payment_intent") ? params.get("redirect_status") : null;
    if (hold.status === "confirmed" || !returned || hold.total.amount_minor === 0) return settleHold(hold);
    if (returned === "succeeded") return waitForPayment();
    // Back without paying, or the provider's page failed: the payment says whether it was declined.
    try {
      const payment = await persist("GET", "/payment");
      if (await settlePayment(payment)) return undefined;
    } catch (error) {
      if (error.code !== "payment_not_found") return showRefusal(error);
    }
    history.replaceState(null, "", thisPage);
    if (hold.status !== "active") return settleHold(hold);
    return showOrder(hold, "Your payment was not completed, and nothing was charged. You can pay when you are ready.");
  }

  // Back from the payment page through the browser's history: what is true now?
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) run();
  });

  function run() {
    start().catch((error) => showRefusal(error));
  }

  run();
})();
