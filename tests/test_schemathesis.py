"""schemathesis against ``/api/openapi.json`` of a running daemon: the document is the truth.

Its own daemon, with an admin token (schemathesis sends it through the
document's ``adminToken`` scheme, and checks that admin routes refuse a
request without it), on a database of its own (the fuzzer creates events and
attendees nobody else should count). Every operation gets its examples, its
coverage cases (boundaries, missing and unexpected values, other methods) and
up to :data:`MAX_EXAMPLES` fuzzed cases, derandomized so a run is repeatable.
Every answer must be no 5xx, one the document lists for the operation, of a
listed content type, with the listed headers, and match its schema; what the
document forbids must be refused; what was deleted must stay gone.

The stateful phase (following links) is not run here: its generation depends on
what the daemon answered, which Hypothesis's replay rejects as flaky. Run it
with the CLI against a daemon (see the README).

Plain sync tests: schemathesis calls the daemon with ``requests``. The number
of cases run is printed at the end of the module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from schemathesis.config import SchemathesisConfig

from eventd.http.openapi import document_bytes
from tests.support import DaemonProcess, scratch_database

TOKEN = "schemathesis-admin-token"
MAX_EXAMPLES = 25  # fuzzed cases per operation: a bounded run for CI
TIMEOUT_SECONDS = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,  # what the document forbids is refused (4xx)
    ignored_auth,  # an admin route without a valid token is refused
    use_after_free,  # what was deleted stays gone
]

# Loaded from the daemon's own builder at import, so collection needs no daemon
# (schemathesis's fixture loader does not work with pytest 9); the ``base_url``
# fixture checks that the running daemon serves exactly this document.
DOCUMENT = orjson.loads(document_bytes())
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"adminToken": {"bearer": TOKEN}}},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "request-timeout": TIMEOUT_SECONDS,
        }
    ),
)

cases_run: Counter[str] = Counter()  # by operation, for the summary line


@pytest.fixture(scope="module")
def fuzzed_daemon(
    pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    with scratch_database(pg_admin_url) as url:
        daemon = DaemonProcess(
            url, tmp_path_factory.mktemp("schemathesis"), auth={"admin_tokens": [TOKEN]}
        ).start()
        yield daemon
        assert daemon.stop() == 0, daemon.log()


@pytest.fixture(scope="module")
def base_url(fuzzed_daemon: DaemonProcess, request: pytest.FixtureRequest) -> Iterator[str]:
    """The daemon's URL, once it is seen to serve the very document fuzzed here."""
    served = httpx.get(f"{fuzzed_daemon.url}/api/openapi.json", timeout=TIMEOUT_SECONDS)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    yield fuzzed_daemon.url
    _print_summary(request.config)


def _print_summary(config: pytest.Config) -> None:
    reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
    capture: Any = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not cases_run:
        return
    with capture.global_and_fixture_disabled():  # past the output capture, to the terminal
        reporter.write("\n")
        reporter.write_line(
            f"schemathesis: {sum(cases_run.values())} generated cases over"
            f" {len(cases_run)} operations (at most {MAX_EXAMPLES} fuzzed each,"
            f" plus examples and coverage cases)"
        )


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_document(case: schemathesis.Case, base_url: str) -> None:
    cases_run[f"{case.operation.method.upper()} {case.operation.path}"] += 1
    case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=TIMEOUT_SECONDS)
