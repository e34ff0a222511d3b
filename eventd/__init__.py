"""eventd: a real-time event-registration daemon."""

__version__ = "0.1.0"
