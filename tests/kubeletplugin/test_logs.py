"""Claim context in log lines is bounded: a huge reference cannot flood the log."""

from __future__ import annotations

import logging

import pytest

from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.logs import ClaimLogger


def test_a_huge_claim_reference_is_shortened_in_log_context_and_text(caplog: pytest.LogCaptureFixture) -> None:
    ref = ClaimRef("n" * 10_000, "u" * 10_000, "c" * 10_000)
    with caplog.at_level(logging.INFO):
        ClaimLogger(logging.getLogger("test"), ref).info("preparing %s", ref)
    (record,) = caplog.records
    assert len(record.claim_uid) <= 128 and len(record.claim) <= 317  # type: ignore[attr-defined]
    assert len(record.getMessage()) < 600


def test_a_valid_claim_reference_is_logged_in_full(caplog: pytest.LogCaptureFixture) -> None:
    ref = ClaimRef("n" * 63, "0b6e1a52-7f0e-4c44-9a1e-3d1f6b0c2a11", ".".join(["c" * 63] * 4)[:253])
    with caplog.at_level(logging.INFO):
        ClaimLogger(logging.getLogger("test"), ref).info("preparing %s", ref)
    (record,) = caplog.records
    assert record.claim == f"{ref.namespace}/{ref.name}"  # type: ignore[attr-defined]
    assert record.getMessage() == f"preparing {ref.namespace}/{ref.name} ({ref.uid})"
