"""Real-time fan-out: from event actors to WebSocket clients."""
