"use strict";
// What the checkout and booking pages both say of an order: where each place is (named
// from the venue's layout, "Row A, seat 4"), the event's refund policy in words and what
// it refunds now (README "Checkout and payments", "Refunds"), and reads retried with
// backoff while the server is busy or out of reach.

const orders = (() => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** A refusal a later try may not get: the network, a busy or limited server. */
  const retryable = (error) =>
    error instanceof bo.ApiError &&
    (error.status === 0 || error.status === 429 || error.status === 503 || error.code === "request_in_progress");

  /** How long to wait before try number `attempt` (0, 1, …): what the server asked, else doubling to 8 s. */
  const backoff = (error, attempt) =>
    error && error.retryAfter ? error.retryAfter * 1000 : Math.min(8000, 500 * 2 ** Math.min(attempt, 4));

  /** A gateway call the page cannot do without, tried again while `retryable`; each wait is reported to `onRetry`. */
  async function persist(method, path, options, onRetry) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await bo.gateway(method, path, options);
      } catch (error) {
        if (!retryable(error)) throw error;
        if (onRetry) onRetry(error);
        await sleep(backoff(error, attempt));
      }
    }
  }

  /** The layout's seats by section and label: their row and number. */
  function seatIndex(layout) {
    const index = new Map();
    for (const section of (layout && layout.sections) || []) {
      for (const row of section.rows || []) {
        for (const [, number, label] of row.seats) index.set(`${section.id}\n${label}`, { row: row.label, number });
      }
    }
    return index;
  }

  /** "Row A, seat 4" (or "Seat 12" in a section of one unnamed row); `number` names a general-admission place. */
  function placeName(index, sectionId, label, number) {
    if (!label) return number ? `Place ${number}` : "General admission";
    const seat = index.get(`${sectionId}\n${label}`);
    if (!seat) return `Seat ${label}`;
    return seat.row ? `Row ${seat.row}, seat ${seat.number}` : `Seat ${seat.number}`;
  }

  const share = (percent) => {
    if (percent === 100) return "a full refund";
    if (percent === 0) return "no refund";
    return `a ${percent} % refund`;
  };
  const before = (n) => {
    if (n === 0) return "before the show starts";
    return `at least ${n === 1 ? "1 hour" : `${n} hours`} before the show`;
  };

  /** The event's refund policy as a sentence; without one, why tickets cannot be cancelled. */
  function policyInWords(event) {
    const policy = event.refund_policy;
    if (!policy || !policy.length) return "Tickets cannot be cancelled: only the organizer can cancel a booking of this event.";
    if (!event.starts_at) return `You can cancel at any time for ${share(policy[0].refund_percent)}.`;
    const tiers = policy.map((tier, i) => `${i === 0 ? "Cancel " : ""}${before(tier.before_hours)} for ${share(tier.refund_percent)}`);
    const last = policy[policy.length - 1];
    const later = last.before_hours > 0 && last.refund_percent > 0
      ? "; later, you can still cancel, but nothing is refunded."
      : ".";
    return tiers.join(", ") + later;
  }

  /**
   * What cancelling at `now` gives back under the event's policy (null without one): the
   * percentage, the amount of `paidMinor`, and until when that holds with what follows.
   */
  function refundAt(event, paidMinor, now = Date.now()) {
    const policy = event.refund_policy;
    if (!policy || !policy.length) return null;
    if (!event.starts_at) return { percent: policy[0].refund_percent, amountMinor: refundOf(paidMinor, policy[0].refund_percent) };
    const hoursLeft = (Date.parse(event.starts_at) - now) / 3600000;
    const at = policy.findIndex((tier) => hoursLeft >= tier.before_hours);
    if (at < 0) return { percent: 0, amountMinor: 0 };
    const tier = policy[at];
    const next = policy[at + 1];
    return {
      percent: tier.refund_percent,
      amountMinor: refundOf(paidMinor, tier.refund_percent),
      until: new Date(Date.parse(event.starts_at) - tier.before_hours * 3600000).toISOString(),
      thenPercent: next ? next.refund_percent : 0,
    };
  }

  /** As the server rounds it: down to the minor unit, never more than was paid. */
  const refundOf = (paidMinor, percent) => Math.floor((paidMinor * Math.min(percent, 100)) / 100);

  /** Whether a refusal is about the fan's credentials rather than the order. */
  const isAccessRefusal = (error) =>
    error instanceof bo.ApiError && (error.status === 401 || error.code === "token_for_other_event" ||
      error.code === "token_scope_insufficient");

  /** The same words said again are announced again: the region is emptied first. */
  function announce(region, text) {
    region.textContent = "";
    if (text) setTimeout(() => { region.textContent = text; }, 50);
  }

  return { sleep, retryable, backoff, persist, seatIndex, placeName, share, policyInWords, refundAt, isAccessRefusal, announce };
})();
