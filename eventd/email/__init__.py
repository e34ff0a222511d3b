"""Email: messages composed from outbox rows, transports, and the mailer that drains the outbox."""
