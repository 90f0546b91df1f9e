"""Could any device of a simulated machine ever satisfy a request? (our allocator on an empty cluster)."""

from __future__ import annotations

import json

from tests.lint.helpers import fields, lint


def claim(*requests: str, constraints: str = "") -> str:
    body = "".join(f"    - {r}\n" for r in requests)
    return (
        "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: c}\nspec:\n  devices:\n"
        f"    requests:\n{body}{constraints}"
    )


def exactly(name: str, device_class: str, extra: str = "") -> str:
    return f"{{name: {name}, exactly: {{deviceClassName: {device_class}{extra}}}}}"


def selector(expression: str) -> str:
    return f", selectors: [{{cel: {{expression: {json.dumps(expression)}}}}}]"


H100 = selector('device.attributes["gpu.dra-driver.dev"].productName.contains("H100")')


def test_more_mig_devices_than_a_gpu_can_hold_are_reported_with_the_numbers() -> None:
    [finding] = lint(claim(exactly("small", "mig-1g-5gb.dra-driver.dev", ", count: 8")), "single-a100", "mig")
    assert finding.check == "feasibility" and finding.field == "spec.devices.requests[0]"
    assert finding.message == (
        "no device of profile single-a100 (mode mig) can ever satisfy this request: "
        "8 device(s) needed, 7 of 7 matching device(s) can be allocated"
    )


def test_a_selector_no_device_matches_is_reported_once_for_every_mode() -> None:
    [finding] = lint(claim(exactly("gpu", "gpu.dra-driver.dev", H100)), "dgx-a100")
    assert finding.message == (
        "no device of profile dgx-a100 in any mode can ever satisfy this request: "
        "no device matches the class and request selectors"
    )


def test_different_reasons_per_mode_are_listed_by_mode() -> None:
    [finding] = lint(claim(exactly("big", "mig-7g-40gb.dra-driver.dev", ", count: 2")), "single-a100")
    assert finding.message == (
        "no device of profile single-a100 in any mode can ever satisfy this request: "
        "[whole, timeslice:64, shared] no device matches the class and request selectors; "
        "[mig] 2 device(s) needed, 1 of 1 matching device(s) can be allocated"
    )


def test_more_devices_than_a_claim_may_hold_is_reported_with_or_without_a_profile() -> None:
    text = claim(exactly("ts", "timeslice.dra-driver.dev", ", count: 33"))
    for found in (lint(text), lint(text, "dgx-a100", "timeslice:64")):
        [finding] = found
        assert finding.field == "spec.devices.requests[0].exactly.count"
        assert finding.message == "33 devices can never be allocated: a claim holds at most 32 devices"


def test_the_same_selector_fits_the_machine_it_was_written_for() -> None:
    assert lint(claim(exactly("gpu", "gpu.dra-driver.dev", H100)), "dgx-h100") == []


def test_without_a_mode_a_request_that_fits_some_mode_is_fine() -> None:
    text = claim(exactly("ts", "timeslice.dra-driver.dev", ", count: 10"))
    assert lint(text, "single-a100") == []
    [finding] = lint(text, "single-a100", "timeslice:4")
    assert "10 device(s) needed, 4 of 4 matching" in finding.message


def test_a_capacity_request_larger_than_any_device_is_reported() -> None:
    big = ", capacity: {requests: {memory: 64Gi}}"
    [finding] = lint(claim(exactly("share", "shared.dra-driver.dev", big)), "single-a100", "shared")
    assert finding.field == "spec.devices.requests[0]" and "memory" in finding.message


def test_requests_that_fit_alone_but_not_together_are_reported_on_the_claim() -> None:
    text = claim(exactly("a", "mig-4g-20gb.dra-driver.dev"), exactly("b", "mig-4g-20gb.dra-driver.dev"))
    [finding] = lint(text, "single-a100", "mig")
    assert finding.field == "spec.devices"
    assert finding.message.startswith("each request fits alone, but the claim as a whole fits no node of profile")


def test_an_impossible_constraint_is_reported_on_the_claim() -> None:
    constraint = "    constraints:\n    - {requests: [a, b], matchAttribute: gpu.dra-driver.dev/index}\n"
    text = claim(exactly("a", "gpu.dra-driver.dev"), exactly("b", "gpu.dra-driver.dev"), constraints=constraint)
    [finding] = lint(text, "dgx-a100", "whole")
    assert finding.field == "spec.devices" and "gpu.dra-driver.dev/index" in finding.message


def test_without_a_mode_claims_are_not_checked_as_a_whole() -> None:
    # With one mode for every GPU the two never fit on one A100 together; per-GPU modes on bigger machines
    # (or a config that changes) are outside what the profile says, so only a given mode checks the whole.
    text = claim(exactly("a", "mig-1g-5gb.dra-driver.dev"), exactly("b", "gpu.dra-driver.dev"))
    assert lint(text, "single-a100") == []
    assert fields(lint(text, "single-a100", "mig")) == ["spec.devices"]


def test_first_available_fits_when_one_alternative_does() -> None:
    text = claim(
        "{name: g, firstAvailable: [{name: h, deviceClassName: mig-1g-10gb.dra-driver.dev},"
        " {name: a, deviceClassName: mig-1g-5gb.dra-driver.dev}]}"
    )
    assert lint(text, "single-a100", "mig") == []
    [finding] = lint(text, "single-a100", "whole")
    assert "request g/h" in finding.message and "request g/a" in finding.message


def test_a_selector_that_fails_on_every_device_is_reported_with_the_cel_error() -> None:
    typo = selector('device.attributes["gpu.dra-driver.dev"].prodcutName == "x"')
    [finding] = lint(claim(exactly("gpu", "gpu.dra-driver.dev", typo)), "l4", "whole")
    assert "no such key: prodcutName" in finding.message


def test_a_device_class_that_selects_nothing_is_reported() -> None:
    text = (
        "apiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {name: big-mig.example.com}\nspec:\n"
        '  selectors:\n  - cel: {expression: \'device.attributes["gpu.dra-driver.dev"].type == "MIG"\'}\n'
    )
    [finding] = lint(text, "dgx-h100")
    assert finding.field == "spec.selectors" and finding.message.startswith("selects no device of profile dgx-h100")


def test_requests_with_structural_findings_are_not_evaluated() -> None:
    found = lint(claim(exactly("gpu", "gpu.dra-driver.dev", ", count: '9'")), "single-a100", "whole")
    assert [f.check for f in found] == ["schema"]


def test_requests_of_unknown_classes_are_reported_once() -> None:
    found = lint(claim(exactly("gpu", "nope.example.com")), "single-a100", "whole")
    assert [f.check for f in found] == ["reference"]
