"""The client's IP: X-Forwarded-For counts only when a trusted proxy passed it on."""

from __future__ import annotations

import pytest

from backchannel.server.proxies import client_address, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 127.0.0.1, ::1")


def test_a_direct_client_is_its_peer_whatever_it_claims() -> None:
    assert client_address("198.51.100.7", "203.0.113.1", PROXIES) == "198.51.100.7"
    assert client_address("198.51.100.7", None, PROXIES) == "198.51.100.7"


def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() -> None:
    assert client_address("127.0.0.1", "203.0.113.1", PROXIES) == "203.0.113.1"
    # The client forged the leftmost entry; our proxies appended the rest.
    assert client_address("10.0.0.2", "1.2.3.4, 203.0.113.1, 10.0.0.9", PROXIES) == "203.0.113.1"
    assert client_address("::1", "[2001:db8::5]:443", PROXIES) == "2001:db8::5"
    assert client_address("127.0.0.1", "203.0.113.1:5555", PROXIES) == "203.0.113.1"


def test_without_configured_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", "203.0.113.1", ()) == "127.0.0.1"


def test_a_chain_of_only_proxies_names_the_farthest() -> None:
    assert client_address("127.0.0.1", "10.1.1.1, 10.2.2.2", PROXIES) == "10.1.1.1"


def test_bad_proxy_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="'nope' is not an IP address"):
        parse_networks("10.0.0.0/8, nope")
