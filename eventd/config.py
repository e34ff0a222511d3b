"""The daemon's configuration: one TOML file, overridden by ``EVENTD_<SECTION>_<KEY>``.

Built once at start into frozen dataclasses; nothing reads the environment
after that. Unknown keys and bad values raise :class:`ConfigError` naming the
key, so a typo stops the daemon instead of passing silently.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from eventd.timezones import is_timezone

ENV_PREFIX = "EVENTD_"
CONFIG_PATH_ENV = "EVENTD_CONFIG"
# The largest control frame's payload (RFC 6455 §5.5): a cap below it would make no sense.
MIN_MESSAGE_BYTES = 125


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    bind: str = "127.0.0.1:3000"
    request_timeout_seconds: float = 10.0
    workers: int = 1
    keep_alive_seconds: float = 75.0
    # A new connection's first request head must be in within this.
    header_timeout_seconds: float = 10.0
    # Open connections (each worker counts its own); 0 = no cap.
    max_connections: int = 10_000
    max_connections_per_client: int = 1024
    # Origins whose pages may call the public routes from a browser (CORS).
    cors_origins: tuple[str, ...] = ()
    # The base of the links in emails (manage pages): how people reach the daemon.
    public_url: str = "http://127.0.0.1:3000"

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def loopback(self) -> bool:
        """Bound to this machine only (127.0.0.0/8, ::1, localhost)."""
        return _is_loopback(self.host)

    @property
    def port(self) -> int:
        return split_bind(self.bind)[1]

    def validate(self) -> None:
        split_bind(self.bind)
        _require(self.request_timeout_seconds > 0, "server.request_timeout_seconds", "must be > 0")
        _require(self.workers >= 1, "server.workers", "must be ≥ 1")
        _require(self.keep_alive_seconds > 0, "server.keep_alive_seconds", "must be > 0")
        _require(self.header_timeout_seconds > 0, "server.header_timeout_seconds", "must be > 0")
        _require(self.max_connections >= 0, "server.max_connections", "must be ≥ 0")
        _require(
            self.max_connections_per_client >= 0,
            "server.max_connections_per_client",
            "must be ≥ 0",
        )
        for origin in self.cors_origins:
            _require(
                _ORIGIN.fullmatch(origin) is not None,
                "server.cors_origins",
                f"{origin!r} is not an origin such as https://example.org or"
                " http://localhost:8080 (a scheme and a host, no path, no trailing slash)",
            )
        _require(
            _PUBLIC_URL.fullmatch(self.public_url) is not None,
            "server.public_url",
            f"{self.public_url!r} is not a base URL such as https://events.example.org"
            " (http or https, no query, no trailing slash)",
        )


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    url: str = "embedded"
    data_dir: str = "var/pgdata"
    pool_size: int = 10

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"

    def validate(self) -> None:
        _require(
            self.embedded or self.url.startswith(("postgresql://", "postgres://")),
            "database.url",
            'must be "embedded" or a postgresql:// URL',
        )
        _require(self.pool_size >= 2, "database.pool_size", "must be ≥ 2")


@dataclasses.dataclass(frozen=True)
class RedisConfig:
    url: str = ""
    cache_ttl_seconds: int = 3600

    def validate(self) -> None:
        _require(
            self.url == "" or self.url.startswith(("redis://", "rediss://", "unix://")),
            "redis.url",
            "must be empty or a redis:// URL",
        )
        _require(self.cache_ttl_seconds >= 1, "redis.cache_ttl_seconds", "must be ≥ 1")


@dataclasses.dataclass(frozen=True)
class EmailConfig:
    transport: Literal["smtp", "file", "none"] = "file"
    dir: str = "var/mail"
    # "from" is a Python keyword; the TOML key is mapped onto this field.
    sender: str = "noreply@events.example"
    host: str = "localhost"
    port: int = 587
    username: str = ""
    password: str = ""
    security: Literal["starttls", "tls", "none"] = "starttls"

    def validate(self) -> None:
        _require(1 <= self.port <= 65535, "email.port", "must be a TCP port (1–65535)")
        _require("@" in self.sender, "email.from", "must be an email address")


@dataclasses.dataclass(frozen=True)
class EventsConfig:
    default_timezone: str = "UTC"

    def validate(self) -> None:
        _require(
            is_timezone(self.default_timezone),
            "events.default_timezone",
            f"{self.default_timezone!r} is not an IANA time zone (e.g. Europe/Berlin)",
        )


@dataclasses.dataclass(frozen=True)
class RegistrationsConfig:
    hold_minutes: float = 15.0  # an event's holdMinutes when it is made without one

    def validate(self) -> None:
        _require(
            0.05 <= self.hold_minutes <= 1440,
            "registrations.hold_minutes",
            "must be between 0.05 and 1440",
        )


@dataclasses.dataclass(frozen=True)
class RemindersConfig:
    before_hours: float = 24.0

    def validate(self) -> None:
        _require(self.before_hours > 0, "reminders.before_hours", "must be > 0")


@dataclasses.dataclass(frozen=True)
class WebsocketConfig:
    almost_full_ratio: float = 0.1
    queue_size: int = 64
    ping_interval_seconds: float = 20.0
    # Largest message a client may send; clients send only control frames and small messages.
    max_message_bytes: int = 4096

    def validate(self) -> None:
        _require(
            0 <= self.almost_full_ratio < 1, "websocket.almost_full_ratio", "must be in [0, 1)"
        )
        _require(self.queue_size >= 1, "websocket.queue_size", "must be ≥ 1")
        _require(self.ping_interval_seconds > 0, "websocket.ping_interval_seconds", "must be > 0")
        _require(
            self.max_message_bytes >= MIN_MESSAGE_BYTES,
            "websocket.max_message_bytes",
            f"must be ≥ {MIN_MESSAGE_BYTES}",
        )


@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    max_body_bytes: int = 65536
    requests_per_second_per_client: float = 0

    def validate(self) -> None:
        _require(self.max_body_bytes >= 1024, "limits.max_body_bytes", "must be ≥ 1024")
        _require(
            self.requests_per_second_per_client >= 0,
            "limits.requests_per_second_per_client",
            "must be ≥ 0",
        )


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    admin_tokens: tuple[str, ...] = ()
    allow_open_admin: bool = False

    def validate(self) -> None:
        _require(all(self.admin_tokens), "auth.admin_tokens", "must not contain empty tokens")


@dataclasses.dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"

    def validate(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    email: EmailConfig = EmailConfig()
    events: EventsConfig = EventsConfig()
    reminders: RemindersConfig = RemindersConfig()
    websocket: WebsocketConfig = WebsocketConfig()
    limits: LimitsConfig = LimitsConfig()
    auth: AuthConfig = AuthConfig()
    log: LogConfig = LogConfig()
    registrations: RegistrationsConfig = RegistrationsConfig()
    source: str = "defaults"  # the file the values came from, for the start-up banner
    # The EVENTD_* variables that set a value, by name only: a value may be a secret.
    overrides: tuple[str, ...] = ()

    def validate(self) -> None:
        for name in _section_types():
            getattr(self, name).validate()
        unguarded = not self.auth.admin_tokens and not self.auth.allow_open_admin
        if unguarded and not self.server.loopback:
            raise ConfigError(
                f"server.bind: {self.server.bind} is not a loopback address and no "
                "auth.admin_tokens are set; set tokens or auth.allow_open_admin = true"
            )

    def describe_source(self) -> str:
        """Where the values came from, for the start-up log: the file, then each override's name."""
        where = "defaults (no config file)" if self.source == "defaults" else self.source
        if not self.overrides:
            return f"{where}; no {ENV_PREFIX}* overrides"
        return f"{where}; overridden by {', '.join(self.overrides)}"


# What a browser sends as Origin: scheme://host[:port], lower case, nothing after.
_ORIGIN = re.compile(r"https?://([a-z0-9.\-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")

# A base URL for links: http(s), a host, maybe a port and a path, no trailing slash.
_PUBLIC_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*[^\s?#/])?")

# TOML key -> dataclass field, where a key is not a valid Python name.
_FIELD_ALIASES = {("email", "from"): "sender"}


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the configuration from ``path`` (if any) and the environment."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is None and environ.get(CONFIG_PATH_ENV):
        path = environ[CONFIG_PATH_ENV]
    if path is not None:
        file = Path(path)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        source = str(file)
    sections: dict[str, dict[str, Any]] = {}
    section_types = _section_types()
    for section, values in raw.items():
        if section not in section_types:
            raise ConfigError(f"unknown config section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: must be a table")
        for key, value in values.items():
            sections.setdefault(section, {})[key] = _convert(section, key, value, from_env=False)
    overrides = []
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_PATH_ENV:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in section_types or not key:
            raise ConfigError(f"unknown environment variable {name}")
        sections.setdefault(section, {})[key] = _convert(section, key, value, from_env=True)
        overrides.append(name)
    built = {
        section: section_types[section](
            **{_FIELD_ALIASES.get((section, k), k): v for k, v in values.items()}
        )
        for section, values in sections.items()
    }
    config = Config(**built, source=source, overrides=tuple(sorted(overrides)))
    config.validate()
    return config


def split_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError(f'server.bind: "{bind}" is not HOST:PORT')
    return host, int(port)


def _section_types() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Config)
    return {
        name: typing.cast(type[Any], tp)
        for name, tp in hints.items()
        if isinstance(tp, type) and dataclasses.is_dataclass(tp)
    }


def _toml_keys(section: str) -> dict[str, str]:
    """A section's TOML keys, each with the dataclass field it sets."""
    renamed = {field: key for (sec, key), field in _FIELD_ALIASES.items() if sec == section}
    cls = _section_types()[section]
    return {renamed.get(name, name): name for name in typing.get_type_hints(cls)}


def _convert(section: str, key: str, value: Any, *, from_env: bool) -> Any:
    field_name = _toml_keys(section).get(key)
    if field_name is None:
        raise ConfigError(f"unknown config key {section}.{key}")
    target = typing.get_type_hints(_section_types()[section])[field_name]
    where = f"{section}.{key}"
    if from_env:
        value = _parse_env(where, value, target)
    return _check_type(where, value, target)


def _parse_env(where: str, text: str, target: Any) -> Any:
    origin = typing.get_origin(target)
    try:
        if target is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if target is int:
            return int(text)
        if target is float:
            return float(text)
        if origin is tuple:
            return _parse_env_list(where, text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a valid {_describe(target)}") from None
    return text


def _parse_env_list(where: str, text: str) -> Any:
    """A list from the environment: a JSON array (``["a", "b"]``) or ``a, b``.

    A value that starts with "[" is meant as JSON: taken as a comma list it
    would pass silently as one item spelled with brackets and quotes.
    """
    if not text.lstrip().startswith("["):
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Not the value itself: it may be a secret.
        raise ConfigError(
            f"{where}: starts with [ but is not a JSON array"
            f" ({exc.msg} at character {exc.pos}); give a JSON array"
            ' such as ["a", "b"], or a comma-separated list'
        ) from None


def _check_type(where: str, value: Any, target: Any) -> Any:
    origin = typing.get_origin(target)
    if origin is Literal:
        if value not in typing.get_args(target):
            choices = " | ".join(repr(c) for c in typing.get_args(target))
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: must be a list of strings")
        return tuple(value)
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(target, type) and isinstance(value, target) and not (
        isinstance(value, bool) and target is not bool
    ):
        return value
    raise ConfigError(f"{where}: {value!r} is not a valid {_describe(target)}")


def _describe(target: Any) -> str:
    if typing.get_origin(target) is tuple:
        return "list of strings"
    if isinstance(target, types.GenericAlias):
        return str(target)
    return getattr(target, "__name__", str(target))


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
