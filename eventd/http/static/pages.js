// eventd public pages: what the signup page and the manage page share.
//
// Text from the API always goes into the page as text nodes, never as HTML.
// Exposed as window.eventdPages; each page's own script uses it.
"use strict";

(() => {
  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 5000;

  const $ = (id) => document.getElementById(id);

  /** An element with attributes and children; strings become text nodes. */
  function h(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    node.append(...children);
    return node;
  }

  function show(id, text) {
    const node = $(id);
    if (text !== undefined) node.textContent = text;
    node.hidden = false;
  }

  function hide(id) {
    $(id).hidden = true;
  }

  /** Move focus to a heading (or any element with tabindex="-1") so readers start there. */
  function focusOn(id) {
    const node = $(id);
    node.focus({ preventScroll: true });
    node.scrollIntoView({ block: "nearest" });
  }

  // --- time --------------------------------------------------------------------

  // An event's times are shown where it happens: in its own time zone, with the
  // zone's short name as the reader's language writes it ("Sat, 1 Jun 2030, 18:00 CEST").
  const LOCAL_TIME = {
    weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  };
  const zoneFormats = new Map();
  function localTime(text, timeZone = "UTC") {
    let format = zoneFormats.get(timeZone);
    if (!format) {
      try {
        format = new Intl.DateTimeFormat(undefined, { ...LOCAL_TIME, timeZone });
      } catch {
        // A zone newer than this browser's data: UTC, named as such, is still right.
        format = new Intl.DateTimeFormat(undefined, { ...LOCAL_TIME, timeZone: "UTC" });
      }
      zoneFormats.set(timeZone, format);
    }
    return format.format(new Date(text));
  }

  /** The event's when / ends / where rows, for a <dl>. */
  function eventRows(event) {
    const zone = event.timezone ?? "UTC";
    return [
      ["When", localTime(event.date, zone)],
      ["Ends", localTime(event.endsAt, zone)],
      ["Where", event.location],
    ].flatMap(([term, text]) => [h("dt", {}, term), h("dd", {}, text)]);
  }

  // The server's clock, as far as this page can tell (from the Date header of
  // its answers): a deadline such as a hold's expiresAt is the server's moment.
  let skewMs = 0;
  function noteServerDate(response) {
    const date = Date.parse(response.headers.get("Date") ?? "");
    if (Number.isNaN(date)) return;
    const skew = date - Date.now();
    skewMs = Math.abs(skew) > 2000 ? skew : 0; // the header has whole seconds only
  }
  const serverNow = () => Date.now() + skewMs;

  function durationText(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    return hours > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${two(minutes)}:${two(seconds)}`;
  }

  /** In words, coarse enough to say aloud now and then: "2 minutes", "30 seconds". */
  function spokenDuration(ms) {
    const seconds = Math.max(0, Math.ceil(ms / 1000));
    if (seconds >= 120) return `${Math.ceil(seconds / 60)} minutes`;
    if (seconds > 60) return "about 2 minutes";
    if (seconds > 30) return "1 minute";
    if (seconds > 10) return "30 seconds";
    return "10 seconds";
  }

  /**
   * A countdown to `deadline` (RFC 3339, the server's clock): shown every second
   * in `timerId` (role="timer", which screen readers do not read out each tick),
   * and said in `announceId` (aria-live) only when its coarse wording changes.
   * `onEnd` runs once at zero. Returns a stop function.
   */
  function countdown(deadline, timerId, announceId, what, onEnd) {
    const end = Date.parse(deadline);
    let spoken = null;
    let timer = null;
    const tick = () => {
      const left = end - serverNow();
      $(timerId).textContent = durationText(left);
      const words = left > 0 ? `${spokenDuration(left)} left ${what}` : `Time is up ${what}`;
      if (words !== spoken) {
        spoken = words;
        $(announceId).textContent = words;
      }
      if (left <= 0) {
        clearInterval(timer);
        timer = null;
        onEnd();
      }
    };
    timer = setInterval(tick, 1000);
    tick();
    return () => { if (timer !== null) clearInterval(timer); };
  }

  // --- the API ------------------------------------------------------------------

  /** fetch, answering {ok, status, body}: body is the JSON (or null); never throws on HTTP errors. */
  async function api(method, path, { json, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      return { ok: false, status: 0, body: { title: "The server cannot be reached", detail: "Check your connection and try again." } };
    }
    noteServerDate(response);
    let body = null;
    const type = response.headers.get("Content-Type") ?? "";
    if (type.includes("json")) {
      try { body = await response.json(); } catch { body = null; }
    }
    return { ok: response.ok, status: response.status, body };
  }

  /** One sentence for a problem answer. */
  function problemText(answer) {
    const body = answer.body ?? {};
    if (Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map((error) => `${error.field}: ${error.message}`).join("; ");
    }
    if (answer.status === 429) return "Too many requests right now. Please wait a moment and try again.";
    if (answer.status === 503 || answer.status === 0) {
      return `${body.title ?? "The service is busy"}. Please try again in a moment.`;
    }
    return body.detail || body.title || `The request failed (HTTP ${answer.status}).`;
  }

  const ticketHeaders = (token) => (token ? { "Registration-Token": token } : {});

  /** {qr, status}: the ticket's QR (a data: URL, or null when there is none to show). */
  async function ticketQr(registrationId, token) {
    const answer = await api("GET", `/registrations/${encodeURIComponent(registrationId)}/ticket`,
      { headers: ticketHeaders(token) });
    const qr = answer.ok && answer.body && typeof answer.body.qr === "string" &&
      answer.body.qr.startsWith("data:image/") ? answer.body.qr : null;
    return { qr, status: answer.status };
  }

  // --- an event's stream, kept open --------------------------------------------------

  function setConnection(state, text) {
    const status = $("connection");
    status.dataset.state = state;
    status.textContent = text;
  }

  function wsUrl(path) {
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
  }

  /**
   * Follow one event's stream: `onMessage` gets every message (a snapshot
   * first, `queueUpdate`s too); a closed stream comes back with ?since=<last seq>.
   * `onGone(reason)` once the event is deleted ("deleted") or unknown ("missing").
   */
  function followEvent(eventId, { onMessage, onGone, onOpen = () => {} }) {
    let delay = RECONNECT_FIRST_MS;
    let lastSeq = null;
    let gone = false;
    const connect = () => {
      const since = lastSeq === null ? "" : `?since=${lastSeq}`;
      const socket = new WebSocket(wsUrl(`/ws/events/${encodeURIComponent(eventId)}${since}`));
      let opened = false;
      socket.addEventListener("open", () => {
        opened = true;
        delay = RECONNECT_FIRST_MS;
        setConnection("live", "Live");
        onOpen();
      });
      socket.addEventListener("message", (message) => {
        let parsed;
        try { parsed = JSON.parse(message.data); } catch { return; }
        if (typeof parsed.seq === "number") {
          if (parsed.type !== "snapshot" && lastSeq !== null && parsed.seq <= lastSeq) return;
          lastSeq = parsed.seq;
        }
        if (parsed.type === "eventDeleted") gone = true;
        onMessage(parsed);
        if (gone) onGone("deleted");
      });
      socket.addEventListener("close", async (close) => {
        if (gone || close.code === 1000) {
          setConnection("closed", gone ? "Event cancelled" : "Stream closed");
          return;
        }
        if (!opened) {
          // A refused handshake looks like any failure here; ask whether the event exists.
          const answer = await api("GET", `/events/${encodeURIComponent(eventId)}`);
          if (answer.status === 404) {
            gone = true;
            setConnection("closed", "Not found");
            onGone("missing");
            return;
          }
        }
        const wait = delay;
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
        setConnection("reconnecting", `Reconnecting in ${Math.ceil(wait / 1000)} s…`);
        setTimeout(connect, wait + Math.random() * 250);
      });
    };
    setConnection("connecting", "Connecting…");
    connect();
  }

  /** An event's counts merged from an eventCapacityUpdate's data (newer fields kept when present). */
  function withCounts(event, data) {
    const merged = { ...event };
    for (const key of ["maxAttendees", "registeredCount", "availableSpots", "waitlistCount",
      "heldCount", "checkedInCount", "warning"]) {
      if (key in data) merged[key] = data[key];
    }
    return merged;
  }

  /**
   * `task` at most once per `gapMs`, never two at a time: calls in between fold
   * into one more run afterwards (a rush of stream messages makes one re-read a second).
   */
  function throttled(task, gapMs = 1000) {
    let running = false;
    let again = false;
    let last = 0;
    const run = async () => {
      if (running) { again = true; return; }
      const wait = last + gapMs - Date.now();
      if (wait > 0) {
        running = true;
        await new Promise((resolve) => setTimeout(resolve, wait));
        running = false;
      }
      running = true;
      again = false;
      last = Date.now();
      try { await task(); } finally { running = false; }
      if (again) run();
    };
    return run;
  }

  window.eventdPages = Object.freeze({
    $, h, show, hide, focusOn, localTime, eventRows, countdown, durationText,
    api, problemText, ticketQr, ticketHeaders, followEvent, setConnection, withCounts, throttled,
  });
})();
