"""eventd benchmarks: real daemons, real PostgreSQL, load from a separate process."""
