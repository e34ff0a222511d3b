// eventd signup page, /e/{eventId}: the event, live seats, the admission queue
// when the event has one, the form, and the result.
"use strict";

(() => {
  const P = window.eventdPages;
  const { $, show, hide, focusOn } = P;

  const eventId = decodeURIComponent(location.pathname.split("/")[2] ?? "");
  const queueKey = `eventd.queue.${eventId}`; // this browser's queue ticket, kept across reloads

  let event = null; // the event as its stream last told it
  let salesTimer = null;
  let gone = false;
  let queue = null; // {ticketId, token, rank, status, admittedThrough, opensAt, expiresAt}
  let streamAdmittedThrough = 0;
  let streamRanked = 0;
  let registration = null; // the 201's registration, refreshed as the event changes
  let manageToken = null;
  let email = "";
  let stopHold = null;
  let stopAdmission = null;
  let admittedTicket = null; // the queue ticket whose admission the form shows
  let submissionKey = null; // one Idempotency-Key per filled-in form: a retry is answered once

  // --- the event -------------------------------------------------------------------

  function paintEvent() {
    $("event-title").textContent = event.name;
    document.title = `${event.name} — sign up`;
    $("event-details").replaceChildren(...P.eventRows(event));
    if (event.description) show("event-description", event.description);
    else hide("event-description");
    paintSeats();
    const sales = event.salesStartAt ? Date.parse(event.salesStartAt) : null;
    clearTimeout(salesTimer);
    if (sales !== null && sales > Date.now()) {
      show("sales-note", `Registration opens ${P.localTime(event.salesStartAt, event.timezone)}.`);
      // Gone at the opening (a timer can wait at most about 24 days: check again then).
      salesTimer = setTimeout(paintEvent, Math.min(sales - Date.now() + 500, 2 ** 31 - 1));
    } else {
      hide("sales-note");
    }
    show("event");
  }

  function paintSeats() {
    const seats = event.availableSpots > 0
      ? `${event.availableSpots} of ${event.maxAttendees} seats left`
      : `Full · ${event.waitlistCount} on the waitlist`;
    $("seats").textContent = seats;
    $("seats").dataset.full = String(event.availableSpots <= 0);
    $("waitlist-note").hidden = event.availableSpots > 0;
    if (!$("signup-submit").disabled) $("signup-submit").textContent = submitText();
  }

  const submitText = () => (event && event.availableSpots <= 0 ? "Join the waitlist" : "Register");
  const started = () => Date.parse(event.date) <= Date.now();
  const admitted = () => queue !== null && queue.status === "admitted";

  /** Which of queue / form / result is shown, from what is known now. */
  function arrange() {
    if (!event || gone) return;
    if (registration) {
      hide("queue");
      hide("signup");
      return;
    }
    if (started()) {
      hide("queue");
      hide("signup");
      show("notice", "This event has started: registration is closed.");
      return;
    }
    if (event.admission && !admitted()) {
      show("queue");
      hide("signup");
      paintQueue();
    } else {
      hide("queue");
      show("signup");
      if (admitted() && admittedTicket !== queue.ticketId) {
        admittedTicket = queue.ticketId; // once per admission: its countdown, and focus on the form
        startAdmission();
        focusOn("signup-title");
      }
    }
  }

  // --- the admission queue ---------------------------------------------------------------

  function storedTicket() {
    try {
      const stored = JSON.parse(localStorage.getItem(queueKey) ?? "null");
      return stored && stored.ticketId && stored.token ? stored : null;
    } catch {
      return null;
    }
  }

  function forgetTicket() {
    queue = null;
    try { localStorage.removeItem(queueKey); } catch { /* private mode: nothing kept */ }
  }

  async function joinQueue() {
    $("queue-join").disabled = true;
    hide("queue-error");
    const answer = await P.api("POST", `/events/${encodeURIComponent(eventId)}/queue`);
    $("queue-join").disabled = false;
    if (!answer.ok) {
      show("queue-error", P.problemText(answer));
      return;
    }
    queue = answer.body;
    try {
      localStorage.setItem(queueKey, JSON.stringify({ ticketId: queue.ticketId, token: queue.token }));
    } catch { /* private mode: the ticket lasts as long as the page */ }
    arrange();
    if (!admitted()) focusOn("queue-title");
  }

  let refreshing = null;
  /** Ask where this browser's ticket stands (its rank, whether it is admitted). */
  function refreshTicket() {
    if (refreshing || !queue) return refreshing;
    const { ticketId, token } = queue;
    refreshing = (async () => {
      const path = `/events/${encodeURIComponent(eventId)}/queue/${encodeURIComponent(ticketId)}` +
        `?token=${encodeURIComponent(token)}`;
      const answer = await P.api("GET", path);
      if (answer.ok && answer.body) {
        queue = { ...answer.body, ticketId, token };
        if (queue.status === "expired" || queue.status === "used") {
          forgetTicket(); // a spent place: this browser may join again
          show("queue-error", queue.status === "expired"
            ? "Your turn passed before you registered. Join the queue again to get a new place."
            : "This place in the queue has already been used to register.");
        }
      } else if (answer.status === 404 || answer.status === 403) {
        forgetTicket();
      }
      refreshing = null;
      arrange();
    })();
    return refreshing;
  }

  // At most one ask a second, however often the stream says the queue moved.
  const refreshTicketSoon = P.throttled(() => refreshTicket());

  function paintQueue() {
    if (!queue) {
      show("queue-join");
      hide("queue-state");
      return;
    }
    hide("queue-join");
    show("queue-state");
    const through = Math.max(queue.admittedThrough ?? 0, streamAdmittedThrough);
    if (queue.rank === null || queue.rank === undefined) {
      $("queue-position").textContent = "You are in the queue.";
      $("queue-detail").textContent = queue.opensAt
        ? `When sales open (${P.localTime(queue.opensAt, event.timezone)}), everyone in the ` +
          "queue gets a place in a random order, so there is no need to hurry."
        : "Your place is being given out.";
      if (streamRanked > 0) refreshTicketSoon(); // the queue opened: learn the place drawn
      return;
    }
    const position = queue.rank - through;
    if (position <= 0) {
      $("queue-position").textContent = "It is your turn…";
      $("queue-detail").textContent = "";
      refreshTicketSoon(); // admitted: get the admission's deadline
      return;
    }
    $("queue-position").textContent = `You are number ${position} in the queue.`;
    $("queue-detail").textContent = "Keep this page open. The form opens when it is your turn.";
  }

  function startAdmission() {
    if (stopAdmission) stopAdmission();
    stopAdmission = null;
    if (!admitted() || !queue.expiresAt) {
      hide("admission");
      return;
    }
    show("admission");
    stopAdmission = P.countdown(queue.expiresAt, "admission-countdown", "admission-announce",
      "to register", () => {
        hide("admission");
        forgetTicket();
        show("queue-error", "Your turn passed before you registered. " +
          "Join the queue again to get a new place.");
        arrange();
        focusOn("queue-title");
      });
  }

  // --- the form ----------------------------------------------------------------------

  function newSubmissionKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function fieldError(field, text) {
    const input = $(`attendee-${field}`);
    const error = $(`attendee-${field}-error`);
    if (text) {
      input.setAttribute("aria-invalid", "true");
      error.textContent = text;
      error.hidden = false;
    } else {
      input.removeAttribute("aria-invalid");
      error.textContent = "";
      error.hidden = true;
    }
  }

  function checkForm() {
    const name = $("attendee-name").value.trim();
    const address = $("attendee-email").value.trim();
    const problems = {
      name: name ? null : "Please enter your name.",
      email: !address ? "Please enter your email address."
        : /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address) ? null : "Please enter a valid email address, like name@example.com.",
    };
    fieldError("name", problems.name);
    fieldError("email", problems.email);
    const first = ["name", "email"].find((field) => problems[field]);
    if (first) $(`attendee-${first}`).focus();
    return first ? null : { name, email: address };
  }

  function showServerErrors(answer) {
    const errors = answer.body && Array.isArray(answer.body.errors) ? answer.body.errors : [];
    let placed = false;
    for (const error of errors) {
      const field = /email/i.test(error.field) ? "email" : /name/i.test(error.field) ? "name" : null;
      if (field) {
        fieldError(field, error.message);
        placed = true;
      }
    }
    if (placed) {
      $(`attendee-${$("attendee-name").getAttribute("aria-invalid") ? "name" : "email"}`).focus();
      return;
    }
    const code = answer.body?.code;
    let text = P.problemText(answer);
    if (code === "already_registered") {
      text = "This email address already has a registration for this event. " +
        "The link in its email lets you see or change it.";
    } else if (["admission_required", "admission_used", "admission_expired"].includes(code)) {
      forgetTicket();
      text += " Join the queue again to get a new place.";
      arrange();
    }
    show("form-error", text); // role="alert": said at once, while focus stays in the form
    $("form-error").scrollIntoView({ block: "nearest" });
  }

  async function submit(submitEvent) {
    submitEvent.preventDefault();
    hide("form-error");
    const attendee = checkForm();
    if (!attendee) return;
    submissionKey ??= newSubmissionKey();
    const headers = { "Idempotency-Key": submissionKey };
    if (queue && queue.token) headers["Admission-Token"] = queue.token;
    const button = $("signup-submit");
    button.disabled = true;
    button.textContent = "Sending…";
    const answer = await P.api("POST", "/registrations", {
      json: { eventId, attendee, waitlist: true }, headers,
    });
    button.disabled = false;
    button.textContent = submitText();
    if (!answer.ok) {
      // A refusal is final for this key; a server or network failure may be retried with it.
      if (answer.status > 0 && answer.status < 500 && answer.status !== 429) submissionKey = null;
      showServerErrors(answer);
      return;
    }
    email = attendee.email;
    registration = answer.body;
    manageToken = answer.body.manageToken ?? null;
    forgetTicket(); // the admission is spent
    if (stopAdmission) stopAdmission();
    arrange();
    showResult();
    focusOn("result-title");
  }

  // --- the result ----------------------------------------------------------------------

  const RESULT = {
    confirmed: () => ["You're registered",
      `Your seat is confirmed. A confirmation is on its way to ${email}.`],
    waitlisted: () => ["You're on the waitlist",
      `If a seat frees up, it goes to the waitlist in turn; we will email ${email}.`],
    held: () => manageToken
      ? ["Your seat is held", "Confirm it before the time runs out, or it goes to the next person."]
      : ["Check your email",
        `We sent a link to ${email}. Open it to confirm your seat before the time runs out.`],
    offered: () => manageToken
      ? ["A seat is yours to claim", "Confirm it before the time runs out, or it goes to the next person."]
      : ["Check your email",
        `A seat is free for you: we sent a link to ${email}. Confirm before the time runs out.`],
    expired: () => ["Your hold expired",
      "The seat went back to the others. Reload this page to register again."],
    cancelled: () => ["Your registration is cancelled", "Reload this page to register again."],
  };

  let shownStatus = null;
  function showResult() {
    const expiredLocally = ["held", "offered"].includes(registration.status) &&
      registration.expiresAt && Date.parse(registration.expiresAt) <= Date.now();
    const status = expiredLocally ? "expired" : registration.status;
    const [title, text] = (RESULT[status] ?? (() => [status, ""]))();
    $("result-title").textContent = title;
    $("result-text").textContent = text;
    show("result");
    if (status === "waitlisted" && registration.waitlistPosition) {
      show("result-position", `Your position on the waitlist: ${registration.waitlistPosition}`);
    } else {
      hide("result-position");
    }
    if (stopHold) stopHold();
    stopHold = null;
    if (["held", "offered"].includes(status) && registration.expiresAt) {
      show("hold");
      $("hold-confirm").hidden = !manageToken;
      stopHold = P.countdown(registration.expiresAt, "hold-countdown", "hold-announce",
        "to confirm", () => { refreshRegistration(true); });
    } else {
      hide("hold");
    }
    if (manageToken) {
      $("manage-anchor").href = `/r/${encodeURIComponent(registration.id)}?token=${encodeURIComponent(manageToken)}`;
      show("manage-link");
    }
    if (status === "confirmed" && manageToken && status !== shownStatus) loadTicket();
    if (status !== "confirmed") hide("ticket");
    shownStatus = status;
  }

  async function loadTicket() {
    const { qr } = await P.ticketQr(registration.id, manageToken);
    if (qr) {
      $("ticket-qr").src = qr;
      show("ticket");
    }
  }

  let refreshingRegistration = false;
  /** Re-read the registration (public): the waitlist moves, holds expire, offers come. */
  async function refreshRegistration(moveFocus = false) {
    if (!registration || refreshingRegistration) return;
    refreshingRegistration = true;
    const answer = await P.api("GET", `/registrations/${encodeURIComponent(registration.id)}`);
    refreshingRegistration = false;
    if (!answer.ok || !answer.body) {
      if (moveFocus) showResult();
      return;
    }
    const before = shownStatus;
    registration = { ...registration, ...answer.body };
    showResult();
    if (moveFocus || shownStatus !== before) focusOn("result-title");
  }

  const refreshSoon = P.throttled(() => refreshRegistration());

  async function confirmHold() {
    const button = $("hold-confirm");
    button.disabled = true;
    hide("result-error");
    const answer = await P.api("POST", `/registrations/${encodeURIComponent(registration.id)}/confirm`,
      { headers: P.ticketHeaders(manageToken) });
    button.disabled = false;
    if (answer.ok && answer.body) {
      registration = { ...registration, ...answer.body };
      showResult();
      focusOn("result-title");
      return;
    }
    show("result-error", P.problemText(answer));
    await refreshRegistration(true);
  }

  // --- the stream -------------------------------------------------------------------------

  function onMessage(message) {
    switch (message.type) {
      case "snapshot":
      case "eventUpdated":
        event = { ...(event ?? {}), ...message.data };
        paintEvent();
        arrange();
        break;
      case "eventCapacityUpdate":
        if (!event) return;
        event = P.withCounts(event, message.data);
        paintSeats();
        if (registration && ["waitlisted", "held", "offered"].includes(registration.status)) {
          refreshSoon();
        }
        break;
      case "queueUpdate":
        streamAdmittedThrough = Math.max(streamAdmittedThrough, message.data.admittedThrough ?? 0);
        streamRanked = message.data.ranked ?? streamRanked;
        if (event && event.admission && !registration && queue && !admitted()) paintQueue();
        break;
      default:
    }
  }

  function onGone(reason) {
    gone = true;
    hide("queue");
    hide("signup");
    if (reason === "missing") {
      $("event-title").textContent = "Event not found";
      document.title = "Event not found — eventd";
      show("notice", "There is no such event. Check the link, or the event may have been cancelled.");
    } else {
      show("notice", "This event was cancelled.");
    }
  }

  $("queue-join").addEventListener("click", joinQueue);
  $("signup-form").addEventListener("submit", submit);
  for (const field of ["name", "email"]) {
    $(`attendee-${field}`).addEventListener("input", () => {
      submissionKey = null;
      if ($(`attendee-${field}`).getAttribute("aria-invalid")) fieldError(field, null);
    });
  }
  $("hold-confirm").addEventListener("click", confirmHold);

  const stored = storedTicket();
  if (stored) queue = { ...stored, rank: null, status: "waiting", admittedThrough: 0 };

  P.followEvent(eventId, {
    onMessage,
    onGone,
    onOpen() {
      if (queue) refreshTicketSoon(); // missed updates while away: ask once
    },
  });
})();
