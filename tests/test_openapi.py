"""The OpenAPI document (``/api/openapi.json``) and Swagger UI (``/api``).

The document must be valid OpenAPI 3.1, name every route of the contract and
of the app (and none the app lacks), mark exactly the ``admin_route`` routes as
admin, carry examples that fit their own schemas, and describe what the code
really sends (``to_json``, stream frames, problems). Swagger UI must load
nothing from anywhere but the daemon — checked over HTTP, and in headless
Chromium with every other host blocked. Whether live answers match the
document is tests/test_schemathesis.py's job.
"""

from __future__ import annotations

import re
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, cast
from urllib.parse import urlsplit

import email_validator
import httpx
import jsonschema
import orjson
import pydantic
import pytest
import referencing
from openapi_spec_validator import OpenAPIV31SpecValidator
from playwright.sync_api import Browser
from pydantic import TypeAdapter
from referencing.jsonschema import DRAFT202012

from eventd import errors
from eventd.config import Config
from eventd.http import problems, responses, schemas
from eventd.http.app import create_app
from eventd.http.context import Services, admin_route
from eventd.http.openapi import build_document, document_bytes
from eventd.http.problems import PROBLEMS
from eventd.model import Attendee, Event, Registration
from eventd.realtime.changes import Change
from tests.conftest import assert_problem, unique_location
from tests.support import DaemonProcess, headless_chromium

# Every route of API.md, as (method, path) with its path parameters unnamed.
CONTRACT_ROUTES = {
    ("POST", "/events"),
    ("GET", "/events"),
    ("GET", "/events/{}"),
    ("PATCH", "/events/{}"),
    ("DELETE", "/events/{}"),
    ("GET", "/events/stats/most-registrations"),
    ("POST", "/attendees"),
    ("GET", "/attendees"),
    ("GET", "/attendees/{}"),
    ("DELETE", "/attendees/{}"),
    ("GET", "/attendees/{}/registrations"),
    ("POST", "/registrations"),
    ("GET", "/registrations/{}"),
    ("DELETE", "/registrations/{}"),
    ("GET", "/registrations/event/{}"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/api"),
    ("GET", "/api/openapi.json"),
    ("GET", "/ws"),  # the WebSocket handshakes
    ("GET", "/ws/events/{}"),
    ("GET", "/"),
}
METHODS = {"get", "post", "put", "patch", "delete"}
DOCUMENT_URI = "urn:eventd:openapi"
WAIT_MS = 15_000


def unnamed(path: str) -> str:
    return re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path)


def document_operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), unnamed(path)): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


@pytest.fixture(scope="module")
def app_views() -> dict[tuple[str, str], Any]:
    """The app's routes, as the document names them: (method, path) -> view function."""
    app = create_app(cast(Services, types.SimpleNamespace(config=Config())))
    views = {}
    for rule in app.url_map.iter_rules():
        methods = {"GET"} if rule.websocket else (rule.methods or set()) - {"HEAD", "OPTIONS"}
        for method in methods:
            views[(method, unnamed(rule.rule))] = app.view_functions[rule.endpoint]
    return views


# --- the document ---------------------------------------------------------------


async def test_the_daemon_serves_a_valid_openapi_3_1_document(client: httpx.AsyncClient):
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert served["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(served).validate()
    assert served == orjson.loads(document_bytes())
    assert (await client.get("/api/openapi.json")).content == response.content  # built once


def test_every_route_of_the_contract_is_in_it(document: dict[str, Any]):
    missing = CONTRACT_ROUTES - document_operations(document).keys()
    assert not missing


def test_it_describes_exactly_the_routes_of_the_app(
    document: dict[str, Any], app_views: dict[tuple[str, str], Any]
):
    described = document_operations(document).keys()
    assert app_views.keys() - described == set(), "routes the document leaves out"
    assert described - app_views.keys() == set(), "routes the app does not have"


def test_admin_routes_are_exactly_those_behind_admin_route(
    document: dict[str, Any], app_views: dict[tuple[str, str], Any]
):
    async def handler() -> None: ...

    guard = admin_route(handler).__code__

    def is_admin(view: Any) -> bool:
        while view is not None:
            if getattr(view, "__code__", None) is guard:
                return True
            view = getattr(view, "__wrapped__", None)
        return False

    admin = {route for route, view in app_views.items() if is_admin(view)}
    assert ("GET", "/metrics") in admin  # the walk finds them at all
    for route, operation in document_operations(document).items():
        secured = operation.get("security") == [{"adminToken": []}]
        assert secured == (route in admin), route
        assert ("401" in operation["responses"]) == (route in admin), route
    assert document["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["adminToken"]["description"],
    }


def test_every_post_takes_an_idempotency_key(document: dict[str, Any]):
    posts = [op for (method, _), op in document_operations(document).items() if method == "POST"]
    assert len(posts) == 4
    key = document["components"]["parameters"]["IdempotencyKey"]
    assert (key["name"], key["in"], key["schema"]["maxLength"]) == (
        "Idempotency-Key",
        "header",
        255,
    )
    pattern = re.compile(key["schema"]["pattern"])
    for key_text in ("a b~!", "x", "k" * 255):
        assert pattern.fullmatch(key_text)
    for key_text in (" x", "x ", "é", "", "a\tb"):
        assert not pattern.fullmatch(key_text)
    for operation in posts:
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"]
        conflicts = operation["responses"]["409"]["content"]["application/problem+json"]
        assert (
            "idempotency_key_reused"
            in conflicts["schema"]["allOf"][1]["properties"]["code"]["enum"]
        )
        done = operation["responses"].get("201") or operation["responses"]["200"]
        assert "Idempotent-Replayed" in done["headers"]


def test_the_idempotency_key_has_no_value_to_reuse(document: dict[str, Any]):
    # Swagger UI fills "Try it out" with a parameter's example or default: one fixed key
    # would make every POST after the first a 409 idempotency_key_reused.
    key = document["components"]["parameters"]["IdempotencyKey"]
    for where in (key, key["schema"]):
        assert {"example", "examples", "default"}.isdisjoint(where), where
    assert "new random key" in key["description"]


def test_busy_answers_carry_retry_after(document: dict[str, Any]):
    for route, operation in document_operations(document).items():
        for status in ("429", "503"):
            if status in operation["responses"]:
                assert "Retry-After" in operation["responses"][status]["headers"], route
    assert "429" in document_operations(document)[("POST", "/registrations")]["responses"]


def _error_classes(cls: type[errors.EventdError]) -> Iterator[type[errors.EventdError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _error_classes(sub)


def test_problem_codes_match_the_daemons_table(document: dict[str, Any]):
    # Every domain error has its row, and the document shows each code as it is sent.
    for cls in _error_classes(errors.EventdError):
        if cls is not errors.Conflict:  # abstract: never raised itself
            assert cls.code in PROBLEMS, cls
    documented = 0
    for operation in document_operations(document).values():
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get(problems.PROBLEM_JSON)
            if content is None:
                continue
            assert set(content["examples"]) == set(
                content["schema"]["allOf"][1]["properties"]["code"]["enum"]
            )
            for code, example in content["examples"].items():
                row = PROBLEMS[code]
                assert int(status) == row.status, code
                assert (example["value"]["status"], example["value"]["title"]) == (
                    row.status,
                    row.title,
                ), code
                assert row.when, code
                documented += 1
    assert documented > 60
    assert PROBLEMS["not_found"].title == "Not found"


def test_request_bodies_are_the_validating_models(document: dict[str, Any]):
    components = document["components"]["schemas"]
    create = components["EventCreate"]
    assert create["additionalProperties"] is False
    assert set(create["required"]) == {"name", "date", "location", "maxAttendees"}
    capacity = create["properties"]["maxAttendees"]
    assert (capacity["type"], capacity["minimum"], capacity["maximum"]) == ("integer", 1, 1_000_000)
    assert create["properties"]["name"]["maxLength"] == 200
    patch = components["EventPatch"]
    assert patch["minProperties"] == 1
    assert "required" not in patch
    assert patch["properties"].keys() == create["properties"].keys()
    assert all("null" not in orjson.dumps(field).decode() for field in patch["properties"].values())
    assert components["AttendeeCreate"]["properties"]["email"]["format"] == "email"
    assert components["RegistrationCreate"]["properties"]["eventId"]["format"] == "uuid"


def test_the_email_rule_is_the_one_the_document_describes(document: dict[str, Any]):
    described = document["components"]["schemas"]["AttendeeCreate"]["properties"]["email"][
        "description"
    ]

    def accepted(email: str) -> bool:
        try:
            schemas.parse_body(schemas.AttendeeCreate, orjson.dumps({"name": "A", "email": email}))
        except errors.ValidationFailed:
            return False
        return True

    for name in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        assert f"`{name}`" in described, name
        assert not accepted(f"a@{name}")
        assert not accepted(f"a@host.{name}")
    for refused in ("a@localhost", "+x@host.test"):
        assert f"`{refused}`" in described
        assert not accepted(refused)
    assert "`+x@host.example`" in described
    assert accepted("+x@host.example")
    for other in ('"quoted"@example.com', "a@[192.0.2.1]", "Ada <a@example.com>", "a@intranet",
                  "a@example.123"):
        assert not accepted(other), other
    assert accepted("ü@bücher.example")


def test_the_blank_rule_is_described_where_it_applies(document: dict[str, Any]):
    components = document["components"]["schemas"]
    for model, field in [("EventCreate", "name"), ("EventCreate", "location"),
                         ("EventPatch", "name"), ("EventPatch", "location"),
                         ("AttendeeCreate", "name")]:
        described = components[model]["properties"][field]["description"]
        assert "Not blank" in described
        assert "format character" in described, (model, field)


def test_request_examples_pass_validation(document: dict[str, Any]):
    models = {
        "EventCreate": schemas.EventCreate,
        "EventPatch": schemas.EventPatch,
        "AttendeeCreate": schemas.AttendeeCreate,
        "RegistrationCreate": schemas.RegistrationCreate,
    }
    checked = 0
    for operation in document_operations(document).values():
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        model = models[content["schema"]["$ref"].rsplit("/", 1)[1]]
        for example in content["examples"].values():
            schemas.parse_body(model, orjson.dumps(example["value"]))
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("text", ["1700000000", "0.5", "2030-06-01", "soon", "2030-13-01T00:00Z"])
async def test_timestamps_are_rfc_3339_text_as_the_document_says(
    client: httpx.AsyncClient, text: str
):
    # pydantic alone would take "1700000000" as seconds since 1970 (schemathesis found it).
    # A query's bounds also take a plain date (the day's start or end); bodies never.
    listed = await client.get("/events", params={"startDate": text})
    if text == "2030-06-01":
        assert listed.status_code == 200, listed.text
    else:
        assert_problem(listed, 400, "validation_failed")
    for date in (text, 1_900_000_000):
        body = {"name": "Launch", "date": date, "location": unique_location(), "maxAttendees": 5}
        response = await client.post("/events", json=body)
        assert assert_problem(response, 400, "validation_failed")["errors"] == [
            {"field": "date", "message": "must be an RFC 3339 timestamp"}
        ]


# --- examples and what the code sends fit the schemas --------------------------


def _validator(document: dict[str, Any], pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at ``pointer``, its $refs resolved in the document."""
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        DOCUMENT_URI, DRAFT202012.create_resource(document)
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _examples(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every (schema pointer, example) in the document: media types, parameters, schemas."""
    if isinstance(node, dict):
        if "schema" in node and ("example" in node or "examples" in node):
            schema_at = _pointer(*path, "schema")
            if "example" in node:
                yield schema_at, node["example"]
            for named in node.get("examples", {}).values():
                yield schema_at, named["value"]
        if path[:2] == ("components", "schemas") and isinstance(node.get("examples"), list):
            for example in node["examples"]:
                yield _pointer(*path), example
        for key, child in node.items():
            yield from _examples(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _examples(child, (*path, str(index)))


def test_every_example_fits_its_schema(document: dict[str, Any]):
    found = list(_examples(document))
    assert len(found) > 60
    for pointer, example in found:
        errors_found = list(_validator(document, pointer).iter_errors(example))
        assert not errors_found, (pointer, example, [e.message for e in errors_found])


def _component(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    return _validator(document, _pointer("components", "schemas", name))


NOW = datetime(2029, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)


def _event(**changes: Any) -> Event:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": "Launch",
        "description": "",
        "starts_at": NOW + timedelta(days=30),
        "duration_minutes": 90,
        "location": "Main Hall",
        "max_attendees": 10,
        "confirmed_count": 9,
        "waitlist_count": 2,
        "version": 12,
        "created_at": NOW,
        "updated_at": NOW.replace(microsecond=0),
    }
    return Event(**{**fields, **changes})


def test_records_as_the_daemon_renders_them_fit_their_schemas(document: dict[str, Any]):
    event = _event()
    attendee = Attendee(uuid.uuid4(), "Ada", "Ada@Example.com", NOW)
    confirmed = Registration(uuid.uuid4(), event.id, attendee.id, "confirmed", None, NOW)
    waitlisted = Registration(uuid.uuid4(), event.id, attendee.id, "waitlisted", 2, NOW)
    _component(document, "Event").validate(event.to_json())
    _component(document, "EventSummary").validate(event.summary_json())
    _component(document, "Attendee").validate(attendee.to_json())
    for registration in (confirmed, waitlisted):
        _component(document, "Registration").validate(registration.to_json())
        _component(document, "AttendeeRegistration").validate(
            {**registration.to_json(), "event": event.summary_json()}
        )
    # The response models take them as pydantic reads JSON: strict, nothing unknown.
    for shape, sent in [
        (responses.Event, event.to_json()),
        (responses.EventSummary, event.summary_json()),
        (responses.Attendee, attendee.to_json()),
        (responses.Registration, confirmed.to_json()),
        (responses.Registration, waitlisted.to_json()),
    ]:
        TypeAdapter(shape).validate_json(orjson.dumps(sent), strict=True)
        with pytest.raises(pydantic.ValidationError):
            TypeAdapter(shape).validate_json(orjson.dumps({**sent, "extra": 1}), strict=True)
    # Every field the schema names is one to_json sends, and the other way round.
    assert set(document["components"]["schemas"]["Event"]["required"]) == event.to_json().keys()
    assert set(document["components"]["schemas"]["Registration"]["required"]) == (
        confirmed.to_json().keys()
    )


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("snapshot", _event()),
        ("newEvent", _event(version=1, confirmed_count=0, waitlist_count=0)),
        ("eventUpdated", _event()),
        ("eventDeleted", _event()),
        ("eventCapacityUpdate", _event()),  # almostFull
        ("eventCapacityUpdate", _event(confirmed_count=10)),  # full
        ("eventCapacityUpdate", _event(confirmed_count=0)),  # no warning
    ],
)
def test_stream_frames_fit_their_schema(document: dict[str, Any], kind: str, event: Event):
    text = Change(kind, event, event.version, NOW).encode(0.1)  # type: ignore[arg-type]
    _component(document, "StreamMessage").validate(orjson.loads(text))
    TypeAdapter(responses.StreamMessage).validate_json(text, strict=True)


@pytest.mark.parametrize(
    "error",
    [
        errors.ValidationFailed([errors.FieldError("maxAttendees", "must be ≥ 1")]),
        errors.EventOverlap("It overlaps.", uuid.uuid4()),
        errors.RateLimited("Slow down.", retry_after_seconds=1),
        errors.NotFound("Event x does not exist."),
    ],
)
async def test_problems_as_the_daemon_renders_them_fit_their_schema(
    document: dict[str, Any], error: errors.EventdError
):
    data = await problems.from_error(error).get_data()
    _component(document, "Problem").validate(orjson.loads(data))
    TypeAdapter(responses.Problem).validate_json(data, strict=True)


def test_a_problem_without_its_extras_does_not_fit(document: dict[str, Any]):
    problem = _component(document, "Problem")
    bare = {"type": "about:blank", "title": "t", "status": 400, "detail": "d"}
    assert not problem.is_valid({**bare, "code": "validation_failed"})
    assert not problem.is_valid({**bare, "status": 409, "code": "event_overlap"})
    assert problem.is_valid({**bare, "code": "malformed_json"})


# --- Swagger UI -------------------------------------------------------------------


class _Assets(HTMLParser):
    """The script and style sheet URLs a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"] or "")
        if tag == "link" and found.get("rel") == "stylesheet":
            self.urls.append(found.get("href") or "")


async def test_swagger_ui_loads_its_files_from_the_daemon(client: httpx.AsyncClient):
    page = await client.get("/api")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self';" in page.headers["content-security-policy"]
    parser = _Assets()
    parser.feed(page.text)
    assert len(parser.urls) == 3
    for url in parser.urls:
        assert urlsplit(url)[:2] == ("", ""), url  # no scheme, no host: from the daemon
        assert url.startswith("/api/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(("text/javascript", "text/css")), url
        assert asset.headers["x-content-type-options"] == "nosniff"
        # Revalidated by ETag rather than downloaded again.
        again = await client.get(url, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304, url
    setup = (await client.get("/api/assets/api.js")).text
    assert 'url: "/api/openapi.json"' in setup
    assert "validatorUrl: null" in setup  # else a badge image from validator.swagger.io


@pytest.mark.parametrize("name", ["../openapi.py", "swagger-ui/LICENSE", "index.html", "x.js"])
async def test_only_swagger_ui_files_are_served(client: httpx.AsyncClient, name: str):
    response = await client.get(f"/api/assets/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
def browser(daemon: DaemonProcess) -> Iterator[Browser]:
    """Asks for the daemon first (see ``headless_chromium``)."""
    with headless_chromium() as launched:
        yield launched


def test_swagger_ui_renders_every_operation_offline(daemon: DaemonProcess, browser: Browser):
    page = browser.new_page()
    elsewhere: list[str] = []
    complaints: list[str] = []
    page.on(
        "console",
        lambda message: (
            complaints.append(message.text) if message.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda error: complaints.append(str(error)))

    def only_the_daemon(route: Any) -> None:
        if route.request.url.startswith(f"{daemon.url}/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_daemon)
    page.goto(f"{daemon.url}/api")
    operations = page.locator(".opblock")
    operations.first.wait_for(timeout=WAIT_MS)
    assert operations.count() == len(document_operations(build_document()))
    assert "eventd" in page.locator(".info .title").inner_text()
    page.locator("#operations-events-createEvent .opblock-summary").click()
    page.locator("#operations-events-createEvent .responses-table").first.wait_for(timeout=WAIT_MS)
    assert elsewhere == []
    assert complaints == []


def test_try_it_out_sends_no_idempotency_key_of_its_own(daemon: DaemonProcess, browser: Browser):
    # A key Swagger UI filled in would be the same on every try: each POST after the
    # first would be refused as 409 idempotency_key_reused.
    page = browser.new_page()
    page.route(f"{daemon.url}/attendees", lambda route: route.abort())  # never created
    page.goto(f"{daemon.url}/api")
    block = page.locator("#operations-attendees-createAttendee")
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    key = block.locator("tr[data-param-name='Idempotency-Key'] input")
    assert key.input_value(timeout=WAIT_MS) == ""
    with page.expect_request(f"{daemon.url}/attendees", timeout=WAIT_MS) as sent:
        block.locator("button.execute").click()
    assert sent.value.method == "POST"
    assert "idempotency-key" not in sent.value.headers
