"""Room names, membership rules, and the one emitter."""
