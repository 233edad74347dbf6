"""Subscription requests from URLs and live messages, and the Prometheus text (pure code)."""

import pytest

from aggregator.record.where import where_of
from aggregator.telemetry.metrics import Family, render
from aggregator.web.subscription import (
    ClientFilter,
    SubscriptionError,
    compile_where,
    filter_from_json,
    request_from_query,
)


def test_query_with_every_parameter() -> None:
    request = request_from_query(
        "source=app*,net&source=db&level=warn&grep=time%20out&replay=5000&since=42"
        "&run=abc&format=text&pause=true&token=t",
        max_replay=1000,
    )
    assert request.filter == ClientFilter(("app*", "net", "db"), "warn", "time out")
    assert (request.format, request.replay, request.since, request.run) == ("text", 1000, 42, "abc")
    assert request.paused


def test_empty_query_asks_for_everything_live() -> None:
    request = request_from_query("", max_replay=1000)
    assert request.filter.compile() is None
    assert (request.format, request.replay, request.since) == ("json", 0, None)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("level=loud", "level: expected one of trace, debug, info, warn, error, fatal"),
        ("grep=a(", "grep: not a usable regular expression"),
        ("grep=(a)%5C1", "grep: not a usable regular expression"),  # backreferences: not RE2
        ("since=x", "since: expected a whole number"),
        ("format=xml", "format: expected json or text"),
        ("pause=maybe", "pause: expected true or false"),
        ("source=" + "a" * 1001, "sources: expected patterns of 1 to 1000 characters"),
        ("grep=" + "a" * 1001, "grep: longer than 1000 characters"),
        ("nope=1", "unknown parameter 'nope'"),
    ],
)
def test_bad_queries_say_what_is_wrong(query: str, reason: str) -> None:
    with pytest.raises(SubscriptionError, match=reason.replace("(", r"\(")):
        request_from_query(query, max_replay=10)


def test_live_filters() -> None:
    assert filter_from_json({"sources": ["a"], "level": "error", "grep": None}) == ClientFilter(
        ("a",), "error", None
    )
    assert filter_from_json({"level": "", "grep": ""}) == ClientFilter()
    for bad in ([], {"colour": 1}, {"sources": "a"}, {"level": 3}, {"grep": ["x"]}):
        with pytest.raises(SubscriptionError):
            filter_from_json(bad)


def test_prometheus_text_escapes_labels() -> None:
    family = Family("x_total", "counter", "Things.")
    family.add(3, file='/var/log/"a"\\b\nc')
    family.add(0.25)
    assert render([family]) == (
        "# HELP x_total Things.\n"
        "# TYPE x_total counter\n"
        'x_total{file="/var/log/\\"a\\"\\\\b\\nc"} 3\n'
        "x_total 0.25\n"
    )


def test_a_client_where_pattern_is_bounded_like_its_grep() -> None:
    """A client's `where` ~ pattern is refused when too costly, as its grep is (SPEC §9); the
    same expression in a config (trusted) is taken."""
    costly = 'line ~ "(.*\\\\S){150}s"'
    with pytest.raises(SubscriptionError, match="too costly"):
        compile_where(costly)
    assert where_of(costly).text == costly
