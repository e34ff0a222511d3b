"""The HTTP face: a quart-trio app of routes, schemas and problem responses."""
