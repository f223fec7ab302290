"""The `/ppv` namespace: pay-per-view unlocks and the wallet."""

from __future__ import annotations

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.rooms.names import Namespace


class PpvNamespace(AuthenticatedNamespace):
    """Pay-per-view unlocks and the wallet."""

    path = Namespace.PPV
