// eventd dashboard: upcoming events live over /ws, or one event over /ws/events/{id}.
//
// Every piece of event text goes into the page as a text node (never as HTML).
// Streams reconnect with backoff: the list re-reads GET /events once its socket
// is open (so no change falls between the two); an event page resumes with
// ?since=<last seq>.
"use strict";

(() => {
  // Shared with the public pages (/pages/pages.js, loaded first).
  const { $, h, localTime, setConnection } = window.eventdPages;
  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 5000;
  const LIST_LIMIT = 100;
  const LOG_MAX_ENTRIES = 200;
  const ANNOUNCE_EVERY_MS = 3000;

  const ratioText = document.querySelector('meta[name="eventd-almost-full-ratio"]').content;
  const timeFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  // --- small DOM helpers -------------------------------------------------------

  let announceTimer = null;
  let pendingAnnouncement = null;
  /** Tell screen readers, at most once every few seconds (the newest news wins). */
  function announce(text) {
    pendingAnnouncement = text;
    if (announceTimer !== null) return;
    const flush = () => {
      if (pendingAnnouncement === null) { announceTimer = null; return; }
      $("announcer").textContent = pendingAnnouncement;
      pendingAnnouncement = null;
      announceTimer = setTimeout(flush, ANNOUNCE_EVERY_MS);
    };
    flush();
  }

  // --- capacity ----------------------------------------------------------------

  /** The server's rule: "full" at 0 spots, "almostFull" at ≤ ratio × max (≥ 1 spot). */
  function warningFor(event) {
    const available = event.availableSpots;
    if (available <= 0) return "full";
    const decimal = /^(\d+)(?:\.(\d+))?$/.exec(ratioText);
    let almostFull;
    if (decimal) {  // exact, as the server compares: available × 10^k ≤ digits × max
      const scale = 10 ** (decimal[2] || "").length;
      const digits = Number(decimal[1] + (decimal[2] || ""));
      almostFull = available * scale <= Math.max(scale, digits * event.maxAttendees);
    } else {
      almostFull = available <= Math.max(1, Number(ratioText) * event.maxAttendees);
    }
    return almostFull ? "almostFull" : null;
  }

  const WARNING_TEXT = { almostFull: "Almost full", full: "Full" };

  function countsText(event) {
    const held = event.heldCount ?? 0;  // a daemon from before holds sends none
    // Check-ins, counted from the first ticket scanned (a daemon from before sends none).
    const checkedIn = typeof event.checkedInCount === "number"
      ? ` · ${event.checkedInCount} checked in` : "";
    return `${event.registeredCount} / ${event.maxAttendees} registered · ` +
      (held ? `${held} held · ` : "") +
      `${event.availableSpots} available · ${event.waitlistCount} on waitlist${checkedIn}`;
  }

  /** A capacity block: a progressbar (registered of max, then the seats held), the counts
   * and the warning. */
  function capacityBlock(label) {
    const fill = h("div", { class: "fill" });
    const held = h("div", { class: "held" });
    const bar = h("div", {
      class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": 0,
    }, fill, held);
    const counts = h("span", { class: "counts-text" });
    const badge = h("strong", { class: "badge", hidden: "" });
    const block = h("div", { class: "capacity" }, bar, h("p", { class: "counts" }, counts, badge));
    return { block, bar, fill, held, counts, badge };
  }

  function showCapacity(parts, event) {
    const max = Math.max(1, event.maxAttendees);
    parts.bar.setAttribute("aria-valuemax", String(event.maxAttendees));
    parts.bar.setAttribute("aria-valuenow", String(event.registeredCount));
    parts.bar.setAttribute("aria-valuetext", countsText(event));
    const confirmedShare = Math.min(100, (100 * event.registeredCount) / max);
    parts.fill.style.width = `${confirmedShare}%`;
    const heldShare = (100 * (event.heldCount ?? 0)) / max;
    parts.held.style.width = `${Math.min(100 - confirmedShare, heldShare)}%`;
    parts.counts.textContent = countsText(event);
    const warning = event.warning ?? null;
    parts.block.dataset.warning = warning ?? "none";
    parts.badge.dataset.warning = warning ?? "none";
    parts.badge.textContent = warning ? WARNING_TEXT[warning] : "";
    parts.badge.hidden = !warning;
  }

  /** Counts from an eventCapacityUpdate merged into the event, with the server's warning. */
  function withCounts(event, data) {
    const counts = {
      ...event,
      maxAttendees: data.maxAttendees,
      registeredCount: data.registeredCount,
      availableSpots: data.availableSpots,
      waitlistCount: data.waitlistCount,
      heldCount: data.heldCount ?? 0,
      checkedInCount: data.checkedInCount ?? event.checkedInCount,
      warning: data.warning,
    };
    if ("checkedInCount" in data) counts.checkedInCount = data.checkedInCount;
    return counts;
  }

  const withWarning = (event) => ({ ...event, warning: warningFor(event) });

  // --- a stream that comes back -------------------------------------------------

  function wsUrl(path) {
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
  }

  /**
   * Keep a WebSocket open: `url()` is asked afresh for each attempt; `onOpen`
   * may be async (the socket counts as live once it resolves); `shouldRetry`
   * decides after a close, given whether this attempt ever opened.
   */
  function keepStreaming({ url, onOpen, onMessage, shouldRetry }) {
    let delay = RECONNECT_FIRST_MS;
    const connect = () => {
      const socket = new WebSocket(url());
      let opened = false;
      socket.addEventListener("open", async () => {
        opened = true;
        try {
          await onOpen(socket);
        } catch (error) {
          socket.close(4000, "could not load");
          return;
        }
        if (socket.readyState === WebSocket.OPEN) {
          delay = RECONNECT_FIRST_MS;
          setConnection("live", "Live");
        }
      });
      socket.addEventListener("message", (message) => {
        let parsed;
        try { parsed = JSON.parse(message.data); } catch { return; }
        onMessage(parsed);
      });
      socket.addEventListener("close", async (close) => {
        if (!(await shouldRetry(close, opened))) return;
        const wait = delay;
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
        setConnection("reconnecting", `Reconnecting in ${Math.ceil(wait / 1000)} s…`);
        setTimeout(connect, wait + Math.random() * 250);
      });
    };
    setConnection("connecting", "Connecting…");
    connect();
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  const byDate = (a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : a.id < b.id ? -1 : 1);
  const eventLink = (id) => `/?event=${encodeURIComponent(id)}`;
  const signupLink = (id) => `/e/${encodeURIComponent(id)}`;

  // --- the list of upcoming events ------------------------------------------------

  function showList() {
    $("list-view").hidden = false;
    const list = $("events");
    const shown = new Map(); // id → { event, item, parts, link, time, place }
    let buffered = null; // messages that arrive while the list loads
    let total = 0;

    function itemFor(event) {
      const link = h("a", { href: eventLink(event.id) });
      const time = h("time");
      const place = h("span");
      const signup = h("a", { class: "signup", href: signupLink(event.id) }, "Sign-up page");
      const parts = capacityBlock("Registered");
      const item = h("li", { class: "event", "data-event-id": event.id },
        h("h2", {}, link), h("p", { class: "meta" }, time, " · ", place, " · ", signup),
        parts.block);
      return { event, item, parts, link, time, place, signup };
    }

    function paint(entry) {
      const { event } = entry;
      entry.link.textContent = event.name;
      entry.time.dateTime = event.date;
      entry.time.textContent = localTime(event.date, event.timezone);
      entry.place.textContent = event.location;
      entry.parts.bar.setAttribute("aria-label", `Registered for ${event.name}`);
      entry.signup.setAttribute("aria-label", `Sign-up page of ${event.name}`);
      showCapacity(entry.parts, event);
    }

    function upsert(event) {
      let entry = shown.get(event.id);
      if (!entry) {
        entry = itemFor(event);
        shown.set(event.id, entry);
      }
      entry.event = event;
      paint(entry);
    }

    function remove(id) {
      const entry = shown.get(id);
      if (!entry) return;
      entry.item.remove();
      shown.delete(id);
    }

    /** Put items in date order, moving only what is out of place (focus stays put). */
    function arrange() {
      const ordered = [...shown.values()].sort((a, b) => byDate(a.event, b.event));
      ordered.forEach((entry, index) => {
        if (list.children[index] !== entry.item) list.insertBefore(entry.item, list.children[index] ?? null);
      });
      const count = shown.size;
      $("list-summary").textContent = count === 0
        ? "No upcoming events yet. New ones appear here as they are created."
        : `${count} upcoming event${count === 1 ? "" : "s"}` +
          (total > count ? ` (the first ${count} of ${total})` : "") + ", updating live.";
    }

    const isUpcoming = (event) => new Date(event.date) >= new Date();

    function apply(message) {
      const entry = shown.get(message.eventId);
      if (entry && message.seq <= entry.event.version) return; // already seen
      switch (message.type) {
        case "newEvent":
        case "eventUpdated":
          if (isUpcoming(message.data)) upsert(withWarning(message.data));
          else remove(message.eventId);
          if (message.type === "newEvent") announce(`New event: ${message.data.name}`);
          break;
        case "eventCapacityUpdate": {
          if (!entry) return;
          const before = entry.event.warning;
          upsert({ ...withCounts(entry.event, message.data), version: message.seq });
          const after = message.data.warning;
          if (after && after !== before) announce(`${entry.event.name} is ${WARNING_TEXT[after].toLowerCase()}`);
          break;
        }
        case "eventDeleted":
          if (entry) announce(`${entry.event.name} was cancelled`);
          remove(message.eventId);
          break;
        default:
          return;
      }
      arrange();
    }

    keepStreaming({
      url: () => wsUrl("/ws"),
      async onOpen() {
        const queue = [];
        buffered = queue;
        const query = new URLSearchParams({ startDate: new Date().toISOString(), limit: LIST_LIMIT });
        const page = await getJson(`/events?${query}`);
        if (buffered !== queue) return; // this socket closed while the list loaded
        total = page.total;
        const current = new Set(page.items.map((event) => event.id));
        for (const id of [...shown.keys()]) if (!current.has(id)) remove(id);
        for (const event of page.items) {
          const known = shown.get(event.id);
          if (!known || event.version >= known.event.version) upsert(withWarning(event));
        }
        arrange();
        buffered = null;
        queue.forEach(apply);
      },
      onMessage(message) {
        if (buffered) buffered.push(message);
        else apply(message);
      },
      async shouldRetry() {
        buffered = null;
        return true;
      },
    });
  }

  // --- one event's page ----------------------------------------------------------

  const TYPE_TEXT = {
    snapshot: "Snapshot",
    eventCapacityUpdate: "Capacity",
    eventUpdated: "Details changed",
    eventDeleted: "Cancelled",
  };

  function showEvent(id) {
    $("event-view").hidden = false;
    const parts = capacityBlock("Registered");
    $("event-capacity").append(parts.block);
    let event = null;
    let lastSeq = null;
    let deleted = false;

    function paintDetails() {
      $("event-title").textContent = event.name;
      document.title = `${event.name} — eventd`;
      parts.bar.setAttribute("aria-label", `Registered for ${event.name}`);
      const rows = [
        ["When", localTime(event.date, event.timezone)],
        ["Ends", localTime(event.endsAt, event.timezone)],
        ["Time zone", event.timezone ?? "UTC"],
        ["Where", event.location],
        ["About", event.description || "—"],
      ];
      if (event.salesStartAt) rows.push(["Sales open", localTime(event.salesStartAt, event.timezone)]);
      if (event.admission) {
        const { ratePerMinute, tokenMinutes } = event.admission;
        rows.push(["Admission", `queue: ${ratePerMinute} a minute, each admission good for ${tokenMinutes} min`]);
      }
      $("event-details").replaceChildren(...rows.flatMap(([term, text]) => [h("dt", {}, term), h("dd", {}, text)]));
      $("event-signup").href = signupLink(event.id);
      $("event-signup").hidden = false;
      showCapacity(parts, event);
    }

    function log(message, text) {
      const entry = h("li", {},
        h("time", { datetime: message.at }, timeFormat.format(new Date(message.at))),
        h("span", { class: "type" }, TYPE_TEXT[message.type] ?? message.type),
        h("span", { class: "seq" }, `#${message.seq}`),
        text);
      const logList = $("log");
      logList.prepend(entry);
      while (logList.children.length > LOG_MAX_ENTRIES) logList.lastElementChild.remove();
    }

    function summary() {
      const warning = event.warning ? ` — ${WARNING_TEXT[event.warning]}` : "";
      return countsText(event) + warning;
    }

    // A queueUpdate is a state, once a second while the queue moves: shown, not logged
    // or announced (a screen reader would hear it every second); it has no seq.
    function showQueue(data) {
      $("event-queue").hidden = false;
      $("queue-counts").textContent =
        `Admitted through rank ${data.admittedThrough} of ${data.ranked} ranked · ${data.waiting} waiting`;
    }

    function apply(message) {
      if (message.type === "queueUpdate") {
        showQueue(message.data);
        return;
      }
      if (message.type !== "snapshot" && lastSeq !== null && message.seq <= lastSeq) return;
      lastSeq = message.seq;
      switch (message.type) {
        case "snapshot":
        case "eventUpdated":
          event = withWarning(message.data);
          paintDetails();
          log(message, summary());
          if (message.type === "eventUpdated") announce(`${event.name} changed: ${summary()}`);
          break;
        case "eventCapacityUpdate":
          if (!event) return;
          event = { ...withCounts(event, message.data), version: message.seq };
          showCapacity(parts, event);
          log(message, summary());
          announce(summary());
          break;
        case "eventDeleted":
          deleted = true;
          log(message, "The event was cancelled.");
          showNotice("This event was cancelled. Its registrations are gone.");
          announce(`${event ? event.name : "The event"} was cancelled`);
          break;
        default:
      }
    }

    function showNotice(text) {
      $("event-notice").textContent = text;
      $("event-notice").hidden = false;
    }

    keepStreaming({
      url: () => wsUrl(`/ws/events/${encodeURIComponent(id)}` + (lastSeq === null ? "" : `?since=${lastSeq}`)),
      async onOpen() {},
      onMessage: apply,
      async shouldRetry(close, opened) {
        if (deleted || close.code === 1000) {
          setConnection("closed", deleted ? "Stream closed: event cancelled" : "Stream closed");
          return false;
        }
        if (!opened) {
          // A refused handshake looks like any failure here; ask whether the event exists.
          const response = await fetch(`/events/${encodeURIComponent(id)}`).catch(() => null);
          if (response && response.status === 404) {
            $("event-title").textContent = "Event not found";
            showNotice("There is no such event. It may have been cancelled.");
            setConnection("closed", "Not found");
            return false;
          }
        }
        return true;
      },
    });
  }

  const eventId = new URLSearchParams(location.search).get("event");
  if (eventId) showEvent(eventId);
  else showList();
})();
