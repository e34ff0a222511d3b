// eventd manage page, /r/{registrationId}?token=…: the link in every email about
// a registration. Status, ticket, confirm, cancel (after a second, explicit step).
"use strict";

(() => {
  const P = window.eventdPages;
  const { $, show, hide, focusOn } = P;

  const registrationId = decodeURIComponent(location.pathname.split("/")[2] ?? "");
  const token = new URLSearchParams(location.search).get("token") || null;
  const path = `/registrations/${encodeURIComponent(registrationId)}`;

  let registration = null;
  let event = null;
  let stopHold = null;
  let shownStatus = null;
  let following = false;

  const STATUS = {
    confirmed: () => ["You're registered", "Your seat is confirmed. Show the code below at the door."],
    held: () => ["Confirm your seat", "Your seat is held for you. Confirm it before the time runs out, or it goes to the next person."],
    offered: () => ["A seat is yours to claim", "A seat opened up for you. Confirm it before the time runs out, or it goes to the next person in line."],
    waitlisted: () => ["You're on the waitlist", "If a seat frees up, it goes to the waitlist in turn, and we will email you."],
    cancelled: () => ["This registration is cancelled", "Your seat went back. You can register again on the event's page while seats remain."],
    expired: () => ["This hold expired", "The seat went back to the others. You can register again on the event's page."],
  };

  function paintEvent() {
    const link = $("event-link");
    link.textContent = event.name;
    link.href = `/e/${encodeURIComponent(event.id)}`;
    $("event-details").replaceChildren(...P.eventRows(event));
    document.title = `Your registration: ${event.name} — eventd`;
    show("event");
  }

  function paint() {
    const expiredLocally = ["held", "offered"].includes(registration.status) &&
      registration.expiresAt && Date.parse(registration.expiresAt) <= Date.now();
    const status = expiredLocally ? "expired" : registration.status;
    const [title, text] = (STATUS[status] ?? (() => [status, ""]))();
    $("status-title").textContent = title;
    let words = text;
    if (status === "confirmed" && registration.checkedInAt) {
      words = `Checked in ${P.localTime(registration.checkedInAt, event?.timezone)}. Enjoy the event!`;
    }
    $("status-text").textContent = words;
    show("status");

    if (status === "waitlisted" && registration.waitlistPosition) {
      show("status-position", `Your position on the waitlist: ${registration.waitlistPosition}`);
    } else {
      hide("status-position");
    }

    if (stopHold) stopHold();
    stopHold = null;
    const holding = ["held", "offered"].includes(status) && registration.expiresAt;
    if (holding) {
      show("hold");
      stopHold = P.countdown(registration.expiresAt, "hold-countdown", "hold-announce",
        "to confirm", () => { refresh(true); });
    } else {
      hide("hold");
    }

    const active = ["held", "offered", "confirmed", "waitlisted"].includes(status);
    $("confirm").hidden = !(holding && token);
    $("cancel").hidden = !(active && token);
    if (!active) closeCancelStep(false);
    if (active && !token) {
      show("status-error", "This link has no token, so it can only show the status. " +
        "Use the link from your email to confirm or cancel.");
    }

    if (status === "confirmed" && token && status !== shownStatus) loadTicket();
    if (status !== "confirmed") hide("ticket");
    shownStatus = status;
  }

  const WRONG_TOKEN = "This link's token does not match the registration. " +
    "Use the link from your email.";

  async function loadTicket() {
    const { qr, status } = await P.ticketQr(registrationId, token);
    if (qr) {
      $("ticket-qr").src = qr;
      show("ticket");
    } else if (status === 403) {
      show("status-error", WRONG_TOKEN);
    }
  }

  let refreshing = false;
  async function refresh(moveFocus = false) {
    if (refreshing) return;
    refreshing = true;
    const answer = await P.api("GET", path);
    refreshing = false;
    if (answer.status === 404) {
      notFound();
      return;
    }
    if (!answer.ok || !answer.body) {
      show("status-error", P.problemText(answer));
      return;
    }
    const before = shownStatus;
    registration = answer.body;
    paint();
    if (moveFocus || (before !== null && before !== shownStatus)) focusOn("status-title");
  }

  function notFound() {
    $("page-title").textContent = "Registration not found";
    show("notice", "There is no such registration. Check the link in your email; " +
      "if its event was cancelled, the registration went with it.");
    hide("status");
    P.setConnection("closed", "Not found");
  }

  async function confirm() {
    $("confirm").disabled = true;
    hide("status-error");
    const answer = await P.api("POST", `${path}/confirm`, { headers: P.ticketHeaders(token) });
    $("confirm").disabled = false;
    if (answer.ok && answer.body) {
      registration = { ...registration, ...answer.body };
      paint();
      focusOn("status-title");
      return;
    }
    show("status-error", answer.status === 403 ? WRONG_TOKEN : P.problemText(answer));
    await refresh();
  }

  // --- cancel, in two steps ---------------------------------------------------------------

  function openCancelStep() {
    $("cancel").setAttribute("aria-expanded", "true");
    show("cancel-step");
    focusOn("cancel-step-title");
  }

  function closeCancelStep(returnFocus = true) {
    $("cancel").setAttribute("aria-expanded", "false");
    hide("cancel-step");
    if (returnFocus && !$("cancel").hidden) $("cancel").focus();
  }

  async function cancel() {
    $("cancel-yes").disabled = true;
    hide("status-error");
    const answer = await P.api("DELETE", path, { headers: P.ticketHeaders(token) });
    $("cancel-yes").disabled = false;
    closeCancelStep(false);
    if (!answer.ok) {
      show("status-error", answer.status === 403 ? WRONG_TOKEN : P.problemText(answer));
    }
    await refresh(true);
  }

  const refreshSoon = P.throttled(() => refresh());

  // --- live: the waitlist moves, offers come, holds expire ---------------------------------

  function follow() {
    if (following) return;
    following = true;
    P.followEvent(event.id, {
      onMessage(message) {
        if (message.type === "snapshot" || message.type === "eventUpdated") {
          event = { ...event, ...message.data };
          paintEvent();
        } else if (message.type === "eventCapacityUpdate" && registration &&
          ["waitlisted", "held", "offered"].includes(registration.status)) {
          refreshSoon();
        }
      },
      onGone() {
        refresh();
      },
    });
  }

  async function start() {
    const answer = await P.api("GET", path);
    if (answer.status === 404) {
      notFound();
      return;
    }
    if (!answer.ok || !answer.body) {
      show("notice", P.problemText(answer));
      P.setConnection("closed", "Could not load");
      return;
    }
    registration = answer.body;
    const eventAnswer = await P.api("GET", `/events/${encodeURIComponent(registration.eventId)}`);
    if (eventAnswer.ok && eventAnswer.body) {
      event = eventAnswer.body;
      paintEvent();
    }
    paint();
    if (event) follow();
    else P.setConnection("closed", "Event not found");
  }

  $("confirm").addEventListener("click", confirm);
  $("cancel").addEventListener("click", openCancelStep);
  $("cancel-no").addEventListener("click", () => closeCancelStep());
  $("cancel-yes").addEventListener("click", cancel);
  $("cancel-step").addEventListener("keydown", (key) => {
    if (key.key === "Escape") closeCancelStep();
  });
  start();
})();
