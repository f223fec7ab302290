"""Backchannel: realtime chat, notifications and paid unlocks for creator platforms."""

__version__ = "0.1.0"
