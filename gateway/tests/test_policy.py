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
    assert wrong.value.allowed == ("DELETE", "GET", "HEAD", "PATCH")
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


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "PUT", "POST"])
def test_a_literal_path_wins_over_a_template_with_the_method(method: str) -> None:
    """``/alerts/history`` is not ``/alerts/{rule_id}`` with ``rule_id="history"``."""
    with pytest.raises(NoRoute) as wrong:
        Policy().match(method, "/api/v1/alerts/history")
    assert wrong.value.allowed == ("GET", "HEAD")


def test_the_most_literal_template_wins_and_answers_for_its_methods() -> None:
    rules = [
        Rule("GET", "/api/v1/a/{x}/{y}", "viewer", "read", "market"),
        Rule("DELETE", "/api/v1/a/{x}/{y}", "viewer", "write", "market"),
        Rule("GET", "/api/v1/a/{x}/b", "viewer", "read", "market"),
        Rule("POST", "/api/v1/a/{x}/b", "viewer", "write", "market"),
    ]
    policy = Policy(rules)
    assert policy.match("GET", "/api/v1/a/1/b").path == "/api/v1/a/{x}/b"
    assert policy.match("DELETE", "/api/v1/a/1/c").path == "/api/v1/a/{x}/{y}"
    with pytest.raises(NoRoute) as wrong:
        policy.match("DELETE", "/api/v1/a/1/b")
    assert wrong.value.allowed == ("GET", "HEAD", "POST")
    with pytest.raises(NoRoute) as wrong_again:  # not served from the cache of matches
        policy.match("DELETE", "/api/v1/a/1/b")
    assert wrong_again.value.allowed == ("GET", "HEAD", "POST")
