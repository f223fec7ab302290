"""Socket.IO namespaces: one module each, thin over the domain operations."""
