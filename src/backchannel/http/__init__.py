"""The HTTP side-API: one route group per module, thin over the domain operations."""
