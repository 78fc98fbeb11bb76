"use strict";
// Home: the public catalogue (GET /v1/events), one card per event, each leading to the
// event's waiting page.

const saleStateWords = {
  on_sale: "On sale",
  all_held: "All remaining places are in someone's basket; some may come back",
  sold_out: "Sold out",
};

function price(amountMinor, currency) {
  return amountMinor === 0 ? "Free" : bo.money(amountMinor, currency);
}

function priceRange(event) {
  const from = price(event.price_from.amount_minor, event.price_from.currency);
  const to = price(event.price_to.amount_minor, event.price_to.currency);
  return from === to ? from : `${from} to ${to}`;
}

function sectionLine(section, currency) {
  const places = section.remaining > 0
    ? `${section.remaining} ${section.remaining === 1 ? "place" : "places"} left`
    : "none for sale now";
  return bo.el("li", {},
    bo.el("span", { class: "section-name" }, section.name),
    " ",
    bo.el("span", { class: "section-price" }, price(section.price_minor, currency)),
    " ",
    bo.el("span", { class: "muted" }, `(${places})`));
}

function waitingRoomLine(room) {
  if (!room) return "The waiting room is not set up yet: please check back later.";
  if (room.state === "closed") return "The waiting room is closed.";
  if (room.state === "paused") return "The waiting room is paused; you can join the line and keep your place.";
  if (room.open) return "The waiting room is open: join the line and you are let in as your turn comes.";
  if (room.opens_at) return `The waiting room opens ${bo.dateTime(room.opens_at)}; join before then and you are put in a fair random order.`;
  return "The waiting room opens soon.";
}

function eventCard(event) {
  const headingId = `event-${event.id}`;
  const when = event.starts_at
    ? bo.el("time", { datetime: event.starts_at }, bo.dateTime(event.starts_at))
    : bo.dateTime(null);
  return bo.el("article", { class: "event", "aria-labelledby": headingId },
    bo.el("h2", { id: headingId }, event.name),
    bo.el("p", { class: "event-when" }, when),
    bo.el("p", { class: `event-sale sale-${event.sale_state}` },
      bo.el("strong", {}, saleStateWords[event.sale_state] || event.sale_state),
      bo.el("span", { class: "event-price" }, ` · ${priceRange(event)}`)),
    bo.el("ul", { class: "event-sections", "aria-label": `Sections for ${event.name}` },
      event.sections.map((section) => sectionLine(section, event.currency))),
    event.waitlist_enabled && event.sale_state !== "on_sale"
      ? bo.el("p", { class: "muted" }, "A waitlist is open for places that come back.")
      : null,
    bo.el("p", { class: "event-room" }, waitingRoomLine(event.waiting_room)),
    bo.el("a", { class: "get-tickets button", href: `/e/${event.id}` },
      "Get tickets", bo.el("span", { class: "visually-hidden" }, ` for ${event.name}`)));
}

let failures = 0;
let retryTimer = null;

/** The network, a busy or unreachable gateway: worth trying again by itself. */
function retryable(error) {
  return error instanceof bo.ApiError && (error.status === 0 || error.status === 429 || error.status >= 500);
}

async function showCatalogue() {
  clearTimeout(retryTimer);
  bo.render(bo.el("p", { class: "loading", role: "status" }, "Loading…"));
  try {
    const catalogue = await bo.gateway("GET", "/v1/events");
    failures = 0;
    if (catalogue.events.length === 0) {
      bo.render(bo.el("p", { class: "notice" }, "No events are on sale or coming up right now. Please check back soon."));
      return;
    }
    bo.render(
      bo.el("p", { class: "muted" }, "Events on sale or coming up, soonest first."),
      bo.el("div", { class: "event-list" }, catalogue.events.map(eventCard)));
  } catch (error) {
    bo.render(bo.errorBox(error), bo.el("button", { type: "button", onclick: showCatalogue }, "Try again"));
    if (retryable(error)) {
      failures += 1;
      const seconds = error.retryAfter || Math.min(30, 2 ** failures);
      retryTimer = setTimeout(showCatalogue, seconds * 1000);
    }
  }
}

showCatalogue();
