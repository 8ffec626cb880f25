"""The client's address: X-Forwarded-For is believed only as many hops deep as there are trusted proxies."""

import pytest
from django.test import RequestFactory, override_settings

from common.http import client_ip

PROXY = "10.0.0.2"


def request(forwarded_for: str | None = None, remote: str = PROXY):
    headers = {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


@override_settings(LEDGERLINE_TRUSTED_PROXY_COUNT=0)
def test_without_trusted_proxies_the_header_is_ignored():
    assert client_ip(request("203.0.113.9")) == PROXY


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "203.0.113.9",
        "198.51.100.7, 203.0.113.9",  # the client wrote the first entry: it proves nothing
        "not-an-address,, 203.0.113.9",
    ],
)
@override_settings(LEDGERLINE_TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_last_entry_is_the_client(forwarded_for):
    assert client_ip(request(forwarded_for)) == "203.0.113.9"


@override_settings(LEDGERLINE_TRUSTED_PROXY_COUNT=2)
def test_behind_two_proxies_the_second_entry_from_the_right_is_the_client():
    assert client_ip(request("198.51.100.7, 203.0.113.9, 10.0.0.1")) == "203.0.113.9"


@pytest.mark.parametrize("forwarded_for", [None, "", "203.0.113.9:4711", "unknown"])
@override_settings(LEDGERLINE_TRUSTED_PROXY_COUNT=1)
def test_a_missing_or_unreadable_header_falls_back_to_the_connection(forwarded_for):
    assert client_ip(request(forwarded_for)) == PROXY


@override_settings(LEDGERLINE_TRUSTED_PROXY_COUNT=2)
def test_fewer_entries_than_proxies_falls_back_to_the_connection():
    assert client_ip(request("203.0.113.9")) == PROXY


@override_settings(LEDGERLINE_TRUSTED_PROXY_COUNT=1)
def test_ipv6_addresses_are_written_the_one_canonical_way():
    assert client_ip(request("2001:DB8:0:0::1")) == "2001:db8::1"
