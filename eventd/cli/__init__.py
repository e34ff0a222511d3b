"""The command line: ``eventd`` and its subcommands (:mod:`eventd.cli.main`),
and ``eventd watch``, a terminal client of a running daemon (:mod:`eventd.cli.watch`)."""

from __future__ import annotations

from eventd.cli.main import main

__all__ = ["main"]
