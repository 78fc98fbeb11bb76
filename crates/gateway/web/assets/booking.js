"use strict";
// A booking and its tickets (issue 17): each ticket's place, status and QR code, the
// printable page, and cancelling under the event's refund policy (README "The fan's
// tickets", "Checkout and payments").
//
// The page opens with the booking's capability link in its address (`?link=…`, as the
// checkout and the confirmation email give it), or with the fan's access token in this
// tab. An image cannot send a token, so the QR codes always go by the link: read from
// the booking's answer when the page came by token, and put in the address so the page
// still opens once the token has expired. The address is a credential: the page sends
// no referrer, and links nowhere off this site.

(() => {
  const [eventId, , bookingId] = bo.pathIds();
  const api = `/v1/events/${eventId}`;
  const bookingPath = `${api}/bookings/${bookingId}`;

  const page = {
    link: new URLSearchParams(location.search).get("link"),
    token: bo.token(eventId),
    event: null,
    places: new Map(),
  };

  const linkQuery = () => `?link=${encodeURIComponent(page.link)}`;
  /** A booking route by the link when there is one, else by the token. */
  const call = (method, suffix = "") =>
    orders.persist(method, `${bookingPath}${suffix}${page.link ? linkQuery() : ""}`,
      { token: page.link ? null : page.token }, (error) => say(`${error.message} Trying again…`));

  function say(text) {
    const status = document.getElementById("booking-status");
    if (status) orders.announce(status, text);
  }

  // ---- the booking -----------------------------------------------------------------------

  const REFUND_WORDS = {
    pending: "is on its way back to you (it can take a few days to reach your account)",
    succeeded: "has been paid back to you",
    failed: "could not be paid back to your card: the organizer has been told and will return it another way",
  };

  /** "€65.00 has been paid back to you." */
  const refundWords = (refund) => [bo.el("strong", {}, bo.money(refund.amount.amount_minor, refund.amount.currency)),
    ` ${REFUND_WORDS[refund.status] || `is ${refund.status}`}.`];

  function summary(booking) {
    const free = booking.total.amount_minor === 0;
    const cancelled = booking.status === "cancelled";
    return bo.el("section", { class: "card", "aria-labelledby": "booking-title" },
      bo.el("h2", { id: "booking-title", tabindex: "-1" }, page.event.name),
      bo.el("p", {}, bo.dateTime(page.event.starts_at)),
      page.event.cancelled_at ? bo.el("p", { class: "error" }, "The organizer cancelled this event.") : null,
      bo.el("p", {}, "Status: ", bo.el("strong", { class: cancelled ? "booking-cancelled" : "booking-confirmed" },
        cancelled ? `Cancelled on ${bo.dateTime(booking.cancelled_at)}` : "Confirmed")),
      bo.el("p", {}, free ? "Free booking" : "Paid: ",
        free ? null : bo.el("strong", {}, bo.money(booking.total.amount_minor, booking.total.currency))),
      booking.refund ? bo.el("p", {}, "Refund: ", refundWords(booking.refund)) : null);
  }

  // ---- the tickets -----------------------------------------------------------------------

  const STATUS_WORDS = {
    valid: "Valid",
    checked_in: "Checked in",
    revoked: "Revoked: this ticket no longer admits anyone",
  };

  function ticketCard(ticket) {
    const place = orders.placeName(page.places, ticket.section_id, ticket.label, ticket.number);
    let status = STATUS_WORDS[ticket.status] || ticket.status;
    if (ticket.status === "checked_in" && ticket.checked_in_at) {
      status += ` on ${bo.dateTime(ticket.checked_in_at)}${ticket.gate ? ` at ${ticket.gate}` : ""}`;
    }
    const qr = ticket.status === "revoked" || !page.link ? null : bo.el("img", {
      class: "qr",
      alt: `QR code for ${ticket.label ? place.replace(",", "") : `${ticket.section_name} ${place.toLowerCase()}`}`,
      src: `${bookingPath}/tickets/${ticket.id}/qr.svg${linkQuery()}`,
      width: 256,
      height: 256,
      onerror: (event) => event.target.replaceWith(bo.el("p", { class: "error" },
        "This QR code could not be loaded. Reload the page, or open the printable tickets.")),
    });
    return bo.el("article", { class: `ticket ticket-${ticket.status}`, "aria-labelledby": `ticket-${ticket.id}` },
      bo.el("h3", { id: `ticket-${ticket.id}` }, place),
      bo.el("p", { class: "muted" }, ticket.section_name),
      bo.el("p", { class: "ticket-status" }, status),
      qr);
  }

  function ticketsSection(booking, tickets) {
    const live = booking.status === "confirmed";
    const printable = live && page.link
      ? bo.el("p", {}, bo.el("a", { id: "print-tickets", href: `${bookingPath}/tickets/print${linkQuery()}` },
        "Open your tickets to print (one ticket a page)"))
      : null;
    return bo.el("section", { "aria-labelledby": "tickets-title" },
      bo.el("h2", { id: "tickets-title" }, tickets.length === 1 ? "Your ticket" : `Your ${tickets.length} tickets`),
      bo.el("p", {}, live
        ? "Show the QR code at the entrance, on this screen or printed."
        : "These tickets were revoked when the booking was cancelled."),
      bo.el("div", { class: "ticket-list" }, tickets.map(ticketCard)),
      printable,
      live ? bo.el("p", { class: "muted" }, "Keep this page's address private: anyone who has it can see ",
        cancellable() ? "and cancel these tickets." : "these tickets.") : null);
  }

  // ---- cancelling ------------------------------------------------------------------------

  /** Fans cancel only under a refund policy; without one, only the organizer does. */
  const cancellable = () => Boolean(page.event.refund_policy && page.event.refund_policy.length);

  function cancelSection(booking) {
    if (booking.status !== "confirmed") return null;
    if (!cancellable()) {
      return bo.el("section", { class: "card", "aria-labelledby": "cancel-title" },
        bo.el("h2", { id: "cancel-title" }, "Cancelling"),
        bo.el("p", { id: "no-cancel" },
          "This booking cannot be cancelled here: the event has no refund policy, so only the organizer can cancel bookings."));
    }
    return bo.el("section", { class: "card", "aria-labelledby": "cancel-title" },
      bo.el("h2", { id: "cancel-title" }, "Cancelling"),
      bo.el("p", {}, orders.policyInWords(page.event)),
      bo.el("p", {}, bo.el("button", { id: "cancel", type: "button", class: "secondary", "aria-expanded": "false",
        "aria-controls": "cancel-panel", onclick: () => openCancelPanel(booking) }, "Cancel this booking…")),
      bo.el("div", { id: "cancel-panel", class: "cancel-panel", hidden: true }));
  }

  /** What cancelling now gives back, in words, before the fan decides. */
  function refundPreview(booking) {
    if (booking.total.amount_minor === 0 || !booking.payment_id) {
      return "This booking was free: cancelling gives your places back, with nothing to refund.";
    }
    const now = orders.refundAt(page.event, booking.total.amount_minor);
    const money = (minor) => bo.money(minor, booking.total.currency);
    let words = now.percent === 0
      ? "If you cancel now, nothing is refunded."
      : `If you cancel now, you get ${money(now.amountMinor)} back (${now.percent === 100 ? "everything you paid" : `${now.percent} % of ${money(booking.total.amount_minor)}`}).`;
    if (now.until) {
      words += ` That holds until ${bo.dateTime(now.until)}; after that, ${orders.share(now.thenPercent)}.`;
    }
    return words;
  }

  function openCancelPanel(booking) {
    const button = document.getElementById("cancel");
    const panel = document.getElementById("cancel-panel");
    button.setAttribute("aria-expanded", "true");
    panel.hidden = false;
    panel.replaceChildren(
      bo.el("h3", { id: "cancel-panel-title", tabindex: "-1" }, "Cancel this booking?"),
      bo.el("p", { id: "refund-preview" }, refundPreview(booking)),
      bo.el("p", {}, "Your tickets stop working at once and your places go back on sale. This cannot be undone."),
      bo.el("p", { id: "cancel-error", class: "error", role: "alert", hidden: true }),
      bo.el("div", { class: "order-actions" },
        bo.el("button", { id: "confirm-cancel", type: "button", class: "danger", onclick: cancel },
          "Yes, cancel my booking"),
        bo.el("button", { id: "keep-booking", type: "button", class: "secondary", onclick: closeCancelPanel },
          "Keep my booking")));
    document.getElementById("cancel-panel-title").focus();
  }

  function closeCancelPanel() {
    const panel = document.getElementById("cancel-panel");
    panel.hidden = true;
    panel.replaceChildren();
    const button = document.getElementById("cancel");
    button.setAttribute("aria-expanded", "false");
    button.focus();
  }

  async function cancel() {
    const confirm = document.getElementById("confirm-cancel");
    confirm.disabled = true;
    document.getElementById("keep-booking").disabled = true;
    try {
      const cancelled = await call("POST", "/cancel");
      let words = "Your booking is cancelled.";
      if (cancelled.refund && cancelled.refund.amount.amount_minor > 0) {
        const refund = cancelled.refund;
        words += ` ${bo.money(refund.amount.amount_minor, refund.amount.currency)} ${REFUND_WORDS[refund.status] || `is ${refund.status}`}.`;
      } else if (cancelled.total.amount_minor > 0) {
        words += " Nothing is refunded this close to the show.";
      }
      await showBooking(cancelled, words);
    } catch (error) {
      if (orders.isAccessRefusal(error) || error.code === "booking_not_found") return showRefusal(error);
      confirm.disabled = false;
      document.getElementById("keep-booking").disabled = false;
      const box = document.getElementById("cancel-error");
      box.hidden = false;
      orders.announce(box, error instanceof bo.ApiError ? error.message : "We could not cancel. Please try again.");
    }
  }

  // ---- loading ---------------------------------------------------------------------------

  async function showBooking(booking, message) {
    const { tickets } = await call("GET", "/tickets");
    bo.render([
      bo.el("p", { id: "booking-status", role: "status", class: "booking-status" }),
      summary(booking),
      ticketsSection(booking, tickets),
      cancelSection(booking),
    ].filter(Boolean));
    if (message) {
      say(message);
      document.getElementById("booking-title").focus();
    }
  }

  function showRefusal(error) {
    let words = error instanceof bo.ApiError ? error.message : "Something went wrong. Please reload the page.";
    if (error.code === "invalid_link") {
      words = "This link to your tickets is not valid (it was changed, or it has expired). Open the link from your confirmation again.";
    } else if (error.code === "booking_not_found") {
      words = "We could not find this booking: its link may have been replaced by a newer one, or the booking belongs to another pass.";
    } else if (orders.isAccessRefusal(error)) {
      words = "Your pass for this event is no longer valid here. Open the link from your confirmation to see your tickets.";
    }
    bo.render(bo.el("p", { class: "error", role: "alert" }, words),
      bo.el("p", {}, bo.el("a", { href: "/" }, "See all events")));
  }

  async function start() {
    if (!page.link && !page.token) {
      return bo.render(
        bo.el("p", { class: "notice" },
          "This page opens with the link from your booking: the one on the checkout page and in your confirmation email. Open that link to see your tickets."),
        bo.el("p", {}, bo.el("a", { href: "/" }, "See all events")));
    }
    const loading = document.querySelector("#main .loading");
    const retrying = (error) => { if (loading) loading.textContent = `${error.message} Trying again…`; };
    const [booking, event, layout] = await Promise.all([
      orders.persist("GET", `${bookingPath}${page.link ? linkQuery() : ""}`, { token: page.link ? null : page.token }, retrying),
      orders.persist("GET", api, {}, retrying),
      orders.persist("GET", `${api}/seats/layout`, {}, retrying).catch(() => null),
    ]);
    page.event = event;
    page.places = orders.seatIndex(layout);
    if (!page.link && booking.link) {
      page.link = booking.link;
      history.replaceState(null, "", `${location.pathname}${linkQuery()}`);
    }
    return showBooking(booking);
  }

  start().catch(showRefusal);
})();
