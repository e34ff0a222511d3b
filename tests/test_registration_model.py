"""The registration state machine against a simple model, driven by hypothesis.

Each generated case is a small event (capacity 1–3), a few attendees (4–6) and
a list of 10–25 operations — register (with or without the waitlist),
cancel, change the capacity, delete an attendee — sent to the real daemon
over HTTP. A pure-Python model predicts every answer (status and problem
code); after every operation the event's counts and version, every
registration's status and waitlist position, and the order of the event's
registration list are compared with it.

The operations are a hypothesis strategy run by one driver rather than a
``RuleBasedStateMachine``: its swarm testing switches whole rules off per case,
so few cases ever filled an event and formed a waitlist. Here the mix is
fixed (see ``OPERATION_MIX``), and a failure shrinks to a short list.

hypothesis runs synchronously, so this is a plain test with a sync httpx
client (pytest-trio leaves non-async tests alone).

    .venv/bin/pytest tests/test_registration_model.py -s -q

prints how many cases and operations ran (also recorded as the properties
``model_cases`` and ``model_operations``, e.g. in ``--junitxml``). With ``CI``
set in the environment the cases are derandomized: the same ones every run.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import assert_problem, future, unique_location
from tests.support import DaemonProcess

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 60
MIN_OPERATIONS = 10  # shorter lists rarely fill an event, queue and promote
MAX_OPERATIONS = 25

# --- the operations ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Register:
    person: int  # an index into the case's attendees (deleted ones too)
    waitlist: bool


@dataclasses.dataclass(frozen=True)
class Cancel:
    nth: int  # the nth registration the case made (cancelled ones too), modulo their count


@dataclasses.dataclass(frozen=True)
class SetCapacity:
    capacity: int


@dataclasses.dataclass(frozen=True)
class DeleteAttendee:
    person: int


Operation = Register | Cancel | SetCapacity | DeleteAttendee

PEOPLE = st.integers(0, 5)
# Registering is drawn most, deleting least: enough registrations to fill the
# event and queue a waitlist, enough cancellations and capacity changes to
# promote from it, and attendees deleted now and then, not all at once.
OPERATION_MIX = (
    [st.builds(Register, person=PEOPLE, waitlist=st.booleans())] * 5
    + [st.builds(Cancel, nth=st.integers(0, MAX_OPERATIONS))] * 2
    + [st.builds(SetCapacity, capacity=st.integers(1, 4))] * 2
    + [st.builds(DeleteAttendee, person=PEOPLE)]
)
OPERATIONS = st.lists(
    st.sampled_from(OPERATION_MIX).flatmap(lambda s: s),
    min_size=MIN_OPERATIONS,
    max_size=MAX_OPERATIONS,
)


@dataclasses.dataclass(frozen=True)
class Case:
    capacity: int
    people: int
    operations: list[Operation]


CASES = st.builds(Case, capacity=st.integers(1, 3), people=st.integers(4, 6), operations=OPERATIONS)

# --- the model -----------------------------------------------------------------


@dataclasses.dataclass
class ModelRegistration:
    id: str
    attendee_id: str
    status: str  # "confirmed" | "waitlisted"
    seq: int  # arrival order within the event


@dataclasses.dataclass
class Model:
    """What the contract says the event looks like after the operations so far."""

    capacity: int
    live_attendees: set[str] = dataclasses.field(default_factory=set)
    registrations: dict[str, ModelRegistration] = dataclasses.field(default_factory=dict)
    next_seq: int = 0
    promotions: int = 0

    def confirmed(self) -> list[ModelRegistration]:
        return sorted(
            (r for r in self.registrations.values() if r.status == "confirmed"), key=lambda r: r.seq
        )

    def waitlist(self) -> list[ModelRegistration]:
        return sorted(
            (r for r in self.registrations.values() if r.status == "waitlisted"),
            key=lambda r: r.seq,
        )

    def position(self, registration: ModelRegistration) -> int | None:
        if registration.status != "waitlisted":
            return None
        return [r.id for r in self.waitlist()].index(registration.id) + 1

    def holder(self, attendee_id: str) -> ModelRegistration | None:
        return next((r for r in self.registrations.values() if r.attendee_id == attendee_id), None)

    def register(self, attendee_id: str, waitlist: bool) -> tuple[int, str]:
        """The expected answer: a status and a problem code or the new registration's status."""
        if attendee_id not in self.live_attendees:
            return 404, "not_found"
        if self.holder(attendee_id) is not None:
            return 409, "already_registered"
        if len(self.confirmed()) < self.capacity:
            return 201, "confirmed"
        if waitlist:
            return 201, "waitlisted"
        return 409, "event_full"

    def add(self, registration_id: str, attendee_id: str, status: str) -> None:
        self.next_seq += 1
        self.registrations[registration_id] = ModelRegistration(
            registration_id, attendee_id, status, self.next_seq
        )

    def cancel(self, registration_id: str) -> None:
        del self.registrations[registration_id]
        self.promote()

    def set_capacity(self, capacity: int) -> None:
        self.capacity = capacity
        self.promote()

    def delete_attendee(self, attendee_id: str) -> None:
        self.live_attendees.discard(attendee_id)
        if (held := self.holder(attendee_id)) is not None:
            self.cancel(held.id)

    def promote(self) -> None:
        """Free spots go to the waitlist, first in the queue first."""
        free = self.capacity - len(self.confirmed())
        for registration in self.waitlist()[: max(free, 0)]:
            registration.status = "confirmed"
            self.promotions += 1


# --- the driver ----------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """What ran, for the closing report: cases, operations, and how deep they went."""

    cases: int = 0
    operations: int = 0
    waitlisted: int = 0  # registrations the daemon put on a waitlist
    promotions: int = 0  # waitlisted registrations promoted
    refused_lowerings: int = 0  # capacity_below_registrations answers

    def summary(self) -> str:
        return (
            f"registration model: {self.cases} generated cases, {self.operations}"
            f" operations against the daemon ({self.waitlisted} waitlisted,"
            f" {self.promotions} promoted, {self.refused_lowerings} lowerings refused)"
        )


class Driver:
    """Runs one case against the daemon, checking it against the model as it goes."""

    def __init__(self, http: httpx.Client, case: Case, tally: Tally) -> None:
        self.http = http
        self.tally = tally
        response = http.post(
            "/events",
            json={
                "name": "Model event",
                "date": future(),
                "location": unique_location(),
                "maxAttendees": case.capacity,
            },
        )
        assert response.status_code == 201, response.text
        self.event_id: str = response.json()["id"]
        self.version: int = response.json()["version"]
        self.model = Model(capacity=case.capacity)
        self.people: list[str] = []
        for n in range(case.people):
            response = http.post(
                "/attendees",
                json={"name": f"Person {n}", "email": f"model.{uuid.uuid4().hex[:12]}@example.com"},
            )
            assert response.status_code == 201, response.text
            self.people.append(response.json()["id"])
        self.model.live_attendees.update(self.people)
        self.ever_registered: list[str] = []
        # Each registration's manage token and attendee; the cancelled ones stay as
        # history until their attendee is deleted.
        self.tokens: dict[str, str] = {}
        self.owners: dict[str, str] = {}
        self.cancelled: set[str] = set()

    def run(self, operations: list[Operation]) -> None:
        for operation in operations:
            changed = self.apply(operation)
            self.tally.operations += 1
            self.check(changed)
        self.tally.promotions += self.model.promotions

    def apply(self, operation: Operation) -> bool:
        """Send one operation and check its answer; True if it changed the event."""
        match operation:
            case Register(person, waitlist):
                return self.register(self.people[person % len(self.people)], waitlist)
            case Cancel(nth):
                if not self.ever_registered:
                    return False
                return self.cancel(self.ever_registered[nth % len(self.ever_registered)])
            case SetCapacity(capacity):
                return self.set_capacity(capacity)
            case DeleteAttendee(person):
                return self.delete_attendee(self.people[person % len(self.people)])
        raise AssertionError(operation)

    def register(self, attendee_id: str, waitlist: bool) -> bool:
        status, outcome = self.model.register(attendee_id, waitlist)
        response = self.http.post(
            "/registrations",
            json={"eventId": self.event_id, "attendeeId": attendee_id, "waitlist": waitlist},
        )
        if status != 201:
            assert_problem(response, status, outcome)
            return False
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["status"], body["eventId"], body["attendeeId"]) == (
            outcome,
            self.event_id,
            attendee_id,
        )
        self.model.add(body["id"], attendee_id, outcome)
        self.tokens[body["id"]] = body["manageToken"]
        self.owners[body["id"]] = attendee_id
        assert body["waitlistPosition"] == self.model.position(self.model.registrations[body["id"]])
        self.ever_registered.append(body["id"])
        self.tally.waitlisted += outcome == "waitlisted"
        return True

    def cancel(self, registration_id: str) -> bool:
        response = self.http.delete(f"/registrations/{registration_id}",
                                    params={"token": self.tokens.get(registration_id, "none")})
        if registration_id in self.cancelled:  # history: nothing changes
            assert response.status_code == 204, response.text
            return False
        if registration_id not in self.model.registrations:
            assert_problem(response, 404, "not_found")
            return False
        assert response.status_code == 204, response.text
        self.model.cancel(registration_id)
        self.cancelled.add(registration_id)
        return True

    def set_capacity(self, capacity: int) -> bool:
        response = self.http.patch(f"/events/{self.event_id}", json={"maxAttendees": capacity})
        if capacity < len(self.model.confirmed()):
            assert_problem(response, 409, "capacity_below_registrations")
            self.tally.refused_lowerings += 1
            return False
        assert response.status_code == 200, response.text
        changed = capacity != self.model.capacity  # the same capacity changes nothing
        self.model.set_capacity(capacity)
        self.check_counts(response.json())
        return changed

    def delete_attendee(self, attendee_id: str) -> bool:
        response = self.http.delete(f"/attendees/{attendee_id}")
        if attendee_id not in self.model.live_attendees:
            assert_problem(response, 404, "not_found")
            return False
        assert response.status_code == 204, response.text
        held = self.model.holder(attendee_id) is not None
        self.model.delete_attendee(attendee_id)
        # Their registrations' history goes with them.
        self.cancelled -= {r for r, owner in self.owners.items() if owner == attendee_id}
        return held

    # --- after every operation ----------------------------------------------------

    def check(self, changed: bool) -> None:
        response = self.http.get(f"/events/{self.event_id}")
        assert response.status_code == 200, response.text
        event = response.json()
        self.check_counts(event)
        # version rises on every change and stays put on a refusal.
        if changed:
            assert event["version"] > self.version, (event["version"], self.version)
        else:
            assert event["version"] == self.version, (event["version"], self.version)
        self.version = event["version"]
        self.check_list()
        self.check_each_registration()

    def check_counts(self, event: dict[str, Any]) -> None:
        confirmed, waitlisted = len(self.model.confirmed()), len(self.model.waitlist())
        assert (
            event["maxAttendees"],
            event["registeredCount"],
            event["availableSpots"],
            event["waitlistCount"],
        ) == (self.model.capacity, confirmed, self.model.capacity - confirmed, waitlisted)

    def check_list(self) -> None:
        """Confirmed first in registration order, then the waitlist in queue order."""
        response = self.http.get(f"/registrations/event/{self.event_id}")
        assert response.status_code == 200, response.text
        page = response.json()
        expected = self.model.confirmed() + self.model.waitlist()
        assert page["total"] == len(expected)
        assert [
            (r["id"], r["attendee"]["id"], r["status"], r["waitlistPosition"])
            for r in page["items"]
        ] == [(r.id, r.attendee_id, r.status, self.model.position(r)) for r in expected]

    def check_each_registration(self) -> None:
        for registration_id in self.ever_registered:
            response = self.http.get(f"/registrations/{registration_id}")
            held = self.model.registrations.get(registration_id)
            if registration_id in self.cancelled:  # kept as history
                assert response.status_code == 200, response.text
                assert (response.json()["status"], response.json()["waitlistPosition"]) == (
                    "cancelled", None)
                continue
            if held is None:  # its attendee deleted
                assert_problem(response, 404, "not_found")
                continue
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["status"], body["waitlistPosition"]) == (
                held.status,
                self.model.position(held),
            )


def test_registrations_follow_the_model(daemon: DaemonProcess, record_property: Any) -> None:
    tally = Tally()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=bool(os.environ.get("CI")))
    @given(case=CASES)
    def registrations_follow_the_model(case: Case) -> None:
        tally.cases += 1
        with httpx.Client(base_url=daemon.url, timeout=30) as http:
            Driver(http, case, tally).run(case.operations)

    try:
        registrations_follow_the_model()
    finally:
        record_property("model_cases", tally.cases)
        record_property("model_operations", tally.operations)
        print("\n" + tally.summary())
