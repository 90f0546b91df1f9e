"""The webhook's review handler on fuzzed bodies: a Decision (whose review is JSON) or BadReview, never
another exception."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.webhook import BadReview, Decision, decide
from tests.fuzz.strategies import FUZZ, json_values, raw_json, reviews
from tests.webhook.reviews import DRIVER


def decided_or_bad(body: bytes) -> Decision | None:
    try:
        decision = decide(body, DRIVER)
    except BadReview:
        return None
    json.dumps(decision.review())
    return decision


@settings(FUZZ, max_examples=300)
@given(reviews())
def test_any_review_is_decided_or_a_bad_review(body: bytes) -> None:
    decided_or_bad(body)


@settings(FUZZ, max_examples=200)
@given(st.one_of(raw_json(), json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_any_body_is_decided_or_a_bad_review(body: bytes) -> None:
    decided_or_bad(body)
