"""The route table's lookup: exact rules, templates, HEAD, 404 versus 405."""

from __future__ import annotations

import pytest

from gateway.policy import RULES, NoRoute, Policy, Rule


def test_static_and_templated_paths_find_their_rule() -> None:
    policy = Policy()
    assert policy.match("POST", "/api/v1/auth/token").access == "public"
    stock = policy.match("GET", "/api/v1/stocks/BRK.B")
    assert stock.path == "/api/v1/stocks/{ticker}" and stock.upstream == "market"
    assert policy.match("HEAD", "/api/v1/stocks").path == "/api/v1/stocks"
    assert policy.match("GET", "/api/v1/users/me").access == "viewer"  # not /users/{id}
    assert policy.match("PATCH", "/api/v1/users/0b0e").access == "admin"


def test_unknown_paths_are_404_and_wrong_methods_405() -> None:
    policy = Policy()
    with pytest.raises(NoRoute) as missing:
        policy.match("GET", "/api/v1/nowhere")
    assert missing.value.allowed == ()
    with pytest.raises(NoRoute) as wrong:
        policy.match("PUT", "/api/v1/alerts/123")
    assert wrong.value.allowed == ("DELETE", "GET", "PATCH")
    with pytest.raises(NoRoute):
        policy.match("GET", "/api/v1/stocks/ACME/prices/extra")


def test_every_rule_is_consistent() -> None:
    for rule in RULES:
        assert rule.path.startswith("/api/v1/")
        assert rule.access in ("public", "viewer", "analyst", "admin")
        if rule.upstream is not None:  # services' routes are charged as reads or writes
            assert rule.rate_class == ("read" if rule.method in ("GET", "HEAD") else "write")
        if rule.websocket:
            assert rule.method == "GET" and rule.upstream == "realtime"


def test_a_duplicate_rule_is_refused() -> None:
    rule = Rule("GET", "/api/v1/x", "viewer", "read", "market")
    with pytest.raises(ValueError, match="two rules"):
        Policy([rule, rule])
