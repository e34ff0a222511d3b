"""Logging set-up: text for people, JSON lines for machines (``log.format``).

One of ``server.workers`` processes marks each line with its number (text:
``[worker 2]``; JSON: ``"worker": 2``), so interleaved lines say who spoke.
"""

from __future__ import annotations

import logging
import re
import sys

import orjson

from eventd.config import LogConfig

# Secrets a log line must never carry, whoever logs it (a library's message, an
# exception's text): a ``token`` query parameter and the credential headers.
_SECRETS = re.compile(
    r"(?P<name>(?:[?&]|\b)token=|"
    r"\b(?:Registration-Token|Admission-Token|Authorization)\b[\"']?\s*[:=,]\s*[\"']?"
    r"(?:Bearer\s+)?)(?P<secret>[^\s&\"',;)\]}]+)",
    re.IGNORECASE,
)


def redact_secrets(text: str) -> str:
    """``text`` with every manage, admission and admin token replaced by ``***``."""
    return _SECRETS.sub(lambda m: m["name"] + "***", text)


class RedactSecrets(logging.Filter):
    """Rewrites each record's message (and exception text) without secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_secrets(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_secrets(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(config: LogConfig, worker: int | None = None) -> None:
    """Log to stderr; ``worker``: this process is that one of ``server.workers``."""
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        formatter: logging.Formatter = JsonFormatter(worker)
        formatter.converter = __import__("time").gmtime
    else:
        who = "" if worker is None else f"[worker {worker}] "
        formatter = logging.Formatter(f"%(asctime)s %(levelname)-7s {who}%(name)s: %(message)s")
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    # hypercorn's per-connection chatter and pgserver's command dumps are
    # noise at info; eventd says what matters about both.
    for noisy in ("hypercorn.error", "pgserver"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
