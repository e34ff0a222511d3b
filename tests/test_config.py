"""eventd.config.load_config: one TOML file, overridden by EVENTD_<SECTION>_<KEY>.

Rules of this file: no sockets, no daemon; every call passes ``environ``
explicitly (the process environment is never consulted unless a test says
so); files live in pytest's ``tmp_path``. Every refusal is a ConfigError whose
message names the offending key, so each check asserts that name.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from pathlib import Path

import pytest

from eventd.config import (
    AuthConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    EmailConfig,
    ServerConfig,
    load_config,
)

Write = Callable[[str], Path]

REPOSITORY_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write a TOML file and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "eventd.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def refused(match: str, path: Path | None = None, environ: dict[str, str] | None = None) -> str:
    """Load, expect a ConfigError naming ``match``; return its message."""
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    message = str(info.value)
    assert match in message, f"{match!r} not in {message!r}"
    return message


# --- where values come from --------------------------------------------------


def test_defaults_without_a_file() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.source == "defaults"
    assert config.server.bind == "127.0.0.1:3000"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 3000)
    assert config.database.embedded
    assert config.email.transport == "file"
    assert config.auth.admin_tokens == ()


def test_the_process_environment_is_not_read_when_environ_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTD_SERVER_WORKERS", "not a number")
    monkeypatch.setenv("EVENTD_BOGUS", "1")
    assert load_config(None, {}) == Config()


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTD_CONFIG", raising=False)
    monkeypatch.setenv("EVENTD_SERVER_REQUEST_TIMEOUT_SECONDS", "3")
    assert load_config().server.request_timeout_seconds == 3.0


def test_toml_file_values(write: Write) -> None:
    path = write(
        """
[server]
bind = "[::1]:8080"
request_timeout_seconds = 5          # an int where a float is expected
[database]
url = "postgresql://u:p@db.example:5432/event"
pool_size = 4
[redis]
url = "redis://127.0.0.1:6379/0"
[email]
transport = "smtp"
from = "events@example.org"
security = "tls"
port = 465
[reminders]
before_hours = 0.5
[websocket]
queue_size = 8
max_message_bytes = 125
[limits]
requests_per_second_per_client = 20
[auth]
admin_tokens = ["s3cret", "other"]
[log]
level = "debug"
format = "json"
"""
    )
    config = load_config(path, {})
    assert config.source == str(path)
    assert (config.server.host, config.server.port) == ("::1", 8080)
    assert config.server.request_timeout_seconds == 5.0
    assert isinstance(config.server.request_timeout_seconds, float)
    assert config.database == DatabaseConfig(
        url="postgresql://u:p@db.example:5432/event", pool_size=4
    )
    assert not config.database.embedded
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert config.email == EmailConfig(
        transport="smtp", sender="events@example.org", security="tls", port=465
    )
    assert config.reminders.before_hours == 0.5
    assert config.websocket.queue_size == 8
    assert config.websocket.max_message_bytes == 125  # the least: a control frame's most
    assert config.limits.requests_per_second_per_client == 20.0
    assert isinstance(config.limits.requests_per_second_per_client, float)
    assert config.auth.admin_tokens == ("s3cret", "other")
    assert (config.log.level, config.log.format) == ("debug", "json")
    # Untouched keys keep their defaults.
    assert config.server.workers == 1
    assert config.database.data_dir == "var/pgdata"


def test_partial_section_keeps_other_defaults(write: Write) -> None:
    config = load_config(write('[server]\nbind = "127.0.0.1:9000"\n'), {})
    assert config.server == ServerConfig(bind="127.0.0.1:9000")
    assert dataclasses.replace(config, server=ServerConfig(), source="defaults") == Config()


def test_config_path_from_the_environment(write: Write) -> None:
    path = write('[log]\nlevel = "warning"\n')
    config = load_config(None, {"EVENTD_CONFIG": str(path)})
    assert config.log.level == "warning"
    assert config.source == str(path)


def test_an_explicit_path_wins_over_eventd_config(write: Write, tmp_path: Path) -> None:
    path = write('[log]\nlevel = "error"\n')
    config = load_config(path, {"EVENTD_CONFIG": str(tmp_path / "missing.toml")})
    assert config.log.level == "error"


def test_environment_overrides_the_file(write: Write) -> None:
    path = write(
        """
[server]
bind = "127.0.0.1:3000"
request_timeout_seconds = 10.0
[database]
pool_size = 10
[email]
from = "file@example.org"
transport = "file"
[auth]
admin_tokens = ["from-file"]
"""
    )
    config = load_config(
        path,
        {
            "EVENTD_SERVER_BIND": "0.0.0.0:8000",
            "EVENTD_SERVER_REQUEST_TIMEOUT_SECONDS": "2.5",
            "EVENTD_DATABASE_POOL_SIZE": " 20 ",
            "EVENTD_DATABASE_URL": "postgres://x@h/db",
            "EVENTD_EMAIL_FROM": "env@example.org",
            "EVENTD_EMAIL_TRANSPORT": "none",
            "EVENTD_AUTH_ADMIN_TOKENS": "a, b,,c ",
            "EVENTD_LOG_FORMAT": "json",
            "EVENTD_REMINDERS_BEFORE_HOURS": "1",
            "EVENTD_SERVER_MAX_CONNECTIONS_PER_CLIENT": "0",
            "EVENTD_WEBSOCKET_MAX_MESSAGE_BYTES": "8192",
            "PATH": "/usr/bin",  # not ours: ignored
            "eventd_server_workers": "nope",  # not the prefix (case matters): ignored
        },
    )
    assert config.server.bind == "0.0.0.0:8000"
    assert config.server.request_timeout_seconds == 2.5
    assert config.database.pool_size == 20
    assert config.database.url == "postgres://x@h/db"
    assert config.email.sender == "env@example.org"
    assert config.email.transport == "none"
    assert config.auth.admin_tokens == ("a", "b", "c")
    assert config.log.format == "json"
    assert config.reminders.before_hours == 1.0
    assert isinstance(config.reminders.before_hours, float)
    assert config.server.max_connections_per_client == 0  # no cap
    assert config.websocket.max_message_bytes == 8192


def test_the_source_names_the_file_and_each_override_never_a_value(write: Write) -> None:
    path = write('[auth]\nadmin_tokens = ["from-file"]\n')
    config = load_config(
        path,
        {
            "EVENTD_SERVER_WORKERS": "2",
            "EVENTD_DATABASE_URL": "postgresql://u:hunter2@db.example/event",
            "EVENTD_CONFIG": "/elsewhere.toml",  # names the file, set no value; path wins
            "PATH": "/usr/bin",
        },
    )
    assert config.overrides == ("EVENTD_DATABASE_URL", "EVENTD_SERVER_WORKERS")
    described = config.describe_source()
    assert described == f"{path}; overridden by EVENTD_DATABASE_URL, EVENTD_SERVER_WORKERS"
    assert "hunter2" not in described


def test_the_source_of_the_defaults() -> None:
    assert load_config(None, {}).describe_source() == (
        "defaults (no config file); no EVENTD_* overrides"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        (" true ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_boolean_environment_values(text: str, expected: bool) -> None:
    config = load_config(None, {"EVENTD_AUTH_ALLOW_OPEN_ADMIN": text})
    assert config.auth.allow_open_admin is expected


def test_empty_token_list_from_the_environment_clears_the_file(write: Write) -> None:
    path = write('[auth]\nadmin_tokens = ["t"]\n')
    assert load_config(path, {"EVENTD_AUTH_ADMIN_TOKENS": ""}).auth.admin_tokens == ()


def _list_keys() -> list[tuple[str, str]]:
    """Every list-valued key, as (section, key): each takes a JSON array from the environment."""
    found = []
    for section in dataclasses.fields(Config):
        section_type = typing.get_type_hints(Config)[section.name]
        if not dataclasses.is_dataclass(section_type):
            continue
        for key, hint in typing.get_type_hints(section_type).items():
            if typing.get_origin(hint) is tuple:
                found.append((section.name, key))
    return found


LIST_KEYS = _list_keys()


def test_there_are_list_keys() -> None:
    assert ("auth", "admin_tokens") in LIST_KEYS


@pytest.mark.parametrize(("section", "key"), LIST_KEYS, ids=[f"{s}.{k}" for s, k in LIST_KEYS])
def test_a_list_from_the_environment_may_be_a_json_array(section: str, key: str) -> None:
    name = f"EVENTD_{section.upper()}_{key.upper()}"
    # Values any list key takes (tokens, origins).
    config = load_config(None, {name: ' ["https://a.example", "https://b.example:8443"] '})
    assert getattr(getattr(config, section), key) == (
        "https://a.example", "https://b.example:8443"
    )
    assert getattr(getattr(load_config(None, {name: "[]"}), section), key) == ()


def test_a_json_array_of_one_token_is_that_token() -> None:
    config = load_config(None, {"EVENTD_AUTH_ADMIN_TOKENS": '["t"]'})
    assert config.auth.admin_tokens == ("t",)


def test_a_token_in_a_json_array_may_hold_a_comma() -> None:
    config = load_config(None, {"EVENTD_AUTH_ADMIN_TOKENS": '["a,b", "c"]'})
    assert config.auth.admin_tokens == ("a,b", "c")


@pytest.mark.parametrize(("section", "key"), LIST_KEYS, ids=[f"{s}.{k}" for s, k in LIST_KEYS])
@pytest.mark.parametrize("value", ['["s3cret"', "[s3cret]", '["s3cret"] x', "['s3cret']"])
def test_a_list_that_starts_like_json_but_is_not_is_refused(
    section: str, key: str, value: str
) -> None:
    name = f"EVENTD_{section.upper()}_{key.upper()}"
    message = refused(f"{section}.{key}", environ={name: value})
    assert "JSON array" in message
    assert "s3cret" not in message  # the value may be a secret


@pytest.mark.parametrize("value", ["[1, 2]", '[["t"]]', '[null]', '["t", 3]'])
def test_a_json_array_of_other_than_strings_is_refused(value: str) -> None:
    refused("auth.admin_tokens", environ={"EVENTD_AUTH_ADMIN_TOKENS": value})


def test_email_from_maps_to_sender(write: Write) -> None:
    config = load_config(write('[email]\nfrom = "hello@example.org"\n'), {})
    assert config.email.sender == "hello@example.org"


def test_email_sender_is_not_a_config_key(write: Write) -> None:
    # The key is "from" (config.toml, the error messages); "sender" is only the
    # Python field's name and must be as unknown as any other typo.
    refused("email.sender", write('[email]\nsender = "hello@example.org"\n'))
    refused("email.sender", environ={"EVENTD_EMAIL_SENDER": "hello@example.org"})


# --- unknown names -----------------------------------------------------------


def test_unknown_section(write: Write) -> None:
    refused("[bogus]", write("[bogus]\nkey = 1\n"))


def test_unknown_key(write: Write) -> None:
    refused("server.port", write("[server]\nport = 3000\n"))


@pytest.mark.parametrize("key", ["host", "loopback", "validate", "source", "overrides"])
def test_attributes_that_are_not_fields_are_unknown_keys(write: Write, key: str) -> None:
    refused(f"server.{key}", write(f'[server]\n{key} = "x"\n'))


def test_top_level_key_is_an_unknown_section(write: Write) -> None:
    refused("source", write('source = "elsewhere"\n'))


def test_section_that_is_not_a_table(write: Write) -> None:
    refused("server", write("server = 1\n"))


def test_nested_table_is_an_unknown_key(write: Write) -> None:
    refused("server.extra", write("[server.extra]\nx = 1\n"))


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("EVENTD_BOGUS_KEY", "EVENTD_BOGUS_KEY"),
        ("EVENTD_SERVER", "EVENTD_SERVER"),
        ("EVENTD_SERVER_", "EVENTD_SERVER_"),
        ("EVENTD_SERVER_PORT", "server.port"),
        ("EVENTD_EMAIL_FROM_ADDRESS", "email.from_address"),
    ],
)
def test_unknown_environment_variable(name: str, named: str) -> None:
    refused(named, environ={name: "1"})


# --- wrong types and values --------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[server]\nworkers = "1"', "server.workers"),  # string for int
        ("[server]\nworkers = true", "server.workers"),  # bool for int
        ("[server]\nworkers = 1.0", "server.workers"),  # float for int
        ('[server]\nrequest_timeout_seconds = "10"', "server.request_timeout_seconds"),
        ("[server]\nrequest_timeout_seconds = true", "server.request_timeout_seconds"),
        ("[server]\nbind = 3000", "server.bind"),
        ("[database]\npool_size = true", "database.pool_size"),
        ("[auth]\nallow_open_admin = 1", "auth.allow_open_admin"),
        ('[auth]\nallow_open_admin = "true"', "auth.allow_open_admin"),
        ('[auth]\nadmin_tokens = "secret"', "auth.admin_tokens"),
        ("[auth]\nadmin_tokens = [1, 2]", "auth.admin_tokens"),
        ("[email]\nfrom = 5", "email.from"),
        ("[email]\nport = 5.5", "email.port"),
        ("[redis]\ncache_ttl_seconds = 1.5", "redis.cache_ttl_seconds"),
    ],
)
def test_wrong_type_in_the_file(write: Write, toml: str, key: str) -> None:
    refused(key, write(toml + "\n"))


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("EVENTD_SERVER_WORKERS", "abc", "server.workers"),
        ("EVENTD_SERVER_WORKERS", "1.5", "server.workers"),
        ("EVENTD_SERVER_WORKERS", "true", "server.workers"),
        ("EVENTD_SERVER_REQUEST_TIMEOUT_SECONDS", "fast", "server.request_timeout_seconds"),
        ("EVENTD_AUTH_ALLOW_OPEN_ADMIN", "maybe", "auth.allow_open_admin"),
        ("EVENTD_AUTH_ALLOW_OPEN_ADMIN", "", "auth.allow_open_admin"),
        ("EVENTD_EMAIL_PORT", "smtp", "email.port"),
    ],
)
def test_wrong_type_in_the_environment(name: str, value: str, key: str) -> None:
    refused(key, environ={name: value})


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[email]\ntransport = "carrier-pigeon"', "email.transport"),
        ('[email]\ntransport = "SMTP"', "email.transport"),
        ('[email]\nsecurity = "ssl"', "email.security"),
        ('[log]\nlevel = "verbose"', "log.level"),
        ('[log]\nformat = "xml"', "log.format"),
    ],
)
def test_bad_enum_value(write: Write, toml: str, key: str) -> None:
    message = refused(key, write(toml + "\n"))
    assert "is not one of" in message


def test_bad_enum_value_from_the_environment() -> None:
    refused("email.transport", environ={"EVENTD_EMAIL_TRANSPORT": "carrier-pigeon"})


@pytest.mark.parametrize(
    "bind",
    ["localhost", "127.0.0.1:", ":3000", "127.0.0.1:http", "127.0.0.1:70000", "[::1]", ""],
)
def test_bad_bind(write: Write, bind: str) -> None:
    refused("server.bind", write(f'[server]\nbind = "{bind}"\n'))
    refused("server.bind", environ={"EVENTD_SERVER_BIND": bind})


@pytest.mark.parametrize("url", ["mysql://db/event", "", "postgresql:/db", "http://db"])
def test_bad_database_url(write: Write, url: str) -> None:
    refused("database.url", write(f'[database]\nurl = "{url}"\n'))


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[server]\nrequest_timeout_seconds = 0", "server.request_timeout_seconds"),
        ("[server]\nworkers = 0", "server.workers"),
        ("[server]\nkeep_alive_seconds = 0", "server.keep_alive_seconds"),
        ("[server]\nheader_timeout_seconds = 0", "server.header_timeout_seconds"),
        ("[server]\nmax_connections = -1", "server.max_connections"),
        ("[server]\nmax_connections_per_client = -1", "server.max_connections_per_client"),
        ("[websocket]\nmax_message_bytes = 124", "websocket.max_message_bytes"),
        ("[database]\npool_size = 1", "database.pool_size"),
        ('[redis]\nurl = "http://cache"', "redis.url"),
        ("[redis]\ncache_ttl_seconds = 0", "redis.cache_ttl_seconds"),
        ("[email]\nport = 0", "email.port"),
        ("[email]\nport = 65536", "email.port"),
        ('[email]\nfrom = "nobody"', "email.from"),
        ("[reminders]\nbefore_hours = 0", "reminders.before_hours"),
        ("[websocket]\nalmost_full_ratio = 1.0", "websocket.almost_full_ratio"),
        ("[websocket]\nalmost_full_ratio = -0.1", "websocket.almost_full_ratio"),
        ("[websocket]\nqueue_size = 0", "websocket.queue_size"),
        ("[websocket]\nping_interval_seconds = 0", "websocket.ping_interval_seconds"),
        ("[limits]\nmax_body_bytes = 100", "limits.max_body_bytes"),
        (
            "[limits]\nrequests_per_second_per_client = -1",
            "limits.requests_per_second_per_client",
        ),
        ('[auth]\nadmin_tokens = ["ok", ""]', "auth.admin_tokens"),
        ('[events]\ndefault_timezone = "Mars/Olympus"', "events.default_timezone"),
        ('[events]\ndefault_timezone = "../../etc/passwd"', "events.default_timezone"),
        ('[events]\ndefault_timezone = ""', "events.default_timezone"),
        ('[server]\ncors_origins = ["https://example.org/"]', "server.cors_origins"),
        ('[server]\ncors_origins = ["https://example.org/app"]', "server.cors_origins"),
        ('[server]\ncors_origins = ["example.org"]', "server.cors_origins"),
        ('[server]\ncors_origins = ["*"]', "server.cors_origins"),
    ],
)
def test_out_of_range_value(write: Write, toml: str, key: str) -> None:
    refused(key, write(toml + "\n"))


def test_time_zone_and_cors_origins(write: Write) -> None:
    config = load_config(write(
        '[events]\ndefault_timezone = "Europe/Berlin"\n'
        '[server]\ncors_origins = ["https://tickets.example.org", "http://localhost:8080",'
        ' "http://[::1]:3001"]\n'
    ), {})
    assert config.events.default_timezone == "Europe/Berlin"
    assert config.server.cors_origins == (
        "https://tickets.example.org", "http://localhost:8080", "http://[::1]:3001")
    from_env = load_config(None, {
        "EVENTD_EVENTS_DEFAULT_TIMEZONE": "America/New_York",
        "EVENTD_SERVER_CORS_ORIGINS": "https://a.example, https://b.example",
    })
    assert from_env.events.default_timezone == "America/New_York"
    assert from_env.server.cors_origins == ("https://a.example", "https://b.example")
    assert load_config(None, {}).events.default_timezone == "UTC"
    assert load_config(None, {}).server.cors_origins == ()


# --- the file itself ---------------------------------------------------------


def test_invalid_toml(write: Write) -> None:
    path = write("[server\nbind = \n")
    message = refused("not valid TOML", path)
    assert str(path) in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    message = refused("does not exist", path)
    assert str(path) in message


def test_missing_file_named_by_eventd_config(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    refused(str(path), environ={"EVENTD_CONFIG": str(path)})


# --- admin routes on a public address ----------------------------------------


@pytest.mark.parametrize("bind", ["0.0.0.0:3000", "[::]:3000", "192.0.2.10:80", "example.com:80"])
def test_public_bind_without_admin_tokens_is_refused(write: Write, bind: str) -> None:
    message = refused("server.bind", write(f'[server]\nbind = "{bind}"\n'))
    assert "auth.admin_tokens" in message
    refused("server.bind", environ={"EVENTD_SERVER_BIND": bind})


def test_public_bind_with_allow_open_admin(write: Write) -> None:
    path = write('[server]\nbind = "0.0.0.0:3000"\n[auth]\nallow_open_admin = true\n')
    config = load_config(path, {})
    assert config.server.host == "0.0.0.0"
    assert config.auth == AuthConfig(allow_open_admin=True)
    env = {"EVENTD_SERVER_BIND": "0.0.0.0:3000", "EVENTD_AUTH_ALLOW_OPEN_ADMIN": "true"}
    assert load_config(None, env).auth.allow_open_admin


def test_public_bind_with_admin_tokens(write: Write) -> None:
    path = write('[server]\nbind = "0.0.0.0:3000"\n[auth]\nadmin_tokens = ["t0k3n"]\n')
    assert load_config(path, {}).auth.admin_tokens == ("t0k3n",)
    env = {"EVENTD_SERVER_BIND": "0.0.0.0:3000", "EVENTD_AUTH_ADMIN_TOKENS": "t0k3n"}
    assert load_config(None, env).auth.admin_tokens == ("t0k3n",)


@pytest.mark.parametrize("bind", ["localhost:3000", "127.0.0.2:3000", "[::1]:3000", "::1:3000"])
def test_loopback_bind_needs_no_tokens(bind: str) -> None:
    config = load_config(None, {"EVENTD_SERVER_BIND": bind})
    assert config.server.bind == bind
    assert config.auth.admin_tokens == ()


# --- the repository's config.toml --------------------------------------------


def test_repository_config_toml_is_exactly_the_defaults() -> None:
    if not REPOSITORY_CONFIG.exists():
        pytest.skip(f"{REPOSITORY_CONFIG} does not exist yet")
    assert load_config(REPOSITORY_CONFIG, {}) == Config(source=str(REPOSITORY_CONFIG))
