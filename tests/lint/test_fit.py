"""A config whose kind fits none of the devices its request can get (MigDeviceConfig vs GpuConfig)."""

from __future__ import annotations

from tests.lint.helpers import lint

MIG_CONFIG = "{apiVersion: gpu.dra-driver.dev/v1alpha1, kind: MigDeviceConfig}"
GPU_CONFIG = "{apiVersion: gpu.dra-driver.dev/v1alpha1, kind: GpuConfig}"


def claim(*configs: tuple[str, str]) -> str:
    entries = "".join(
        f"    - requests: [{requests}]\n      opaque: {{driver: gpu.dra-driver.dev, parameters: {params}}}\n"
        for requests, params in configs
    )
    return f"""apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {{name: c}}
spec:
  devices:
    requests:
    - name: whole
      exactly: {{deviceClassName: gpu.dra-driver.dev}}
    - name: part
      exactly: {{deviceClassName: mig.dra-driver.dev}}
    - name: either
      firstAvailable:
      - {{name: m, deviceClassName: mig.dra-driver.dev}}
      - {{name: g, deviceClassName: gpu.dra-driver.dev}}
    config:
{entries}"""


def test_mig_config_on_a_whole_gpu_request_is_reported_at_the_entry_kind() -> None:
    [finding] = lint(claim(("whole", MIG_CONFIG)), "dgx-a100", "mig")
    assert finding.check == "config" and finding.field == "spec.devices.config[0].opaque.parameters.kind"
    assert finding.message == (
        "MigDeviceConfig cannot configure request 'whole': the devices of profile dgx-a100 (mode mig) it can get "
        "are gpu devices, which take a GpuConfig; the claim would fail when a pod using it starts"
    )


def test_a_later_entry_that_fits_wins_and_nothing_is_reported() -> None:
    assert lint(claim(("whole", MIG_CONFIG), ("whole", GPU_CONFIG)), "dgx-a100", "mig") == []


def test_an_entry_for_several_requests_only_fails_those_it_names_exactly() -> None:
    found = lint(claim(("whole, part", MIG_CONFIG)), "dgx-a100", "mig")
    assert [f.message.split(":")[0] for f in found] == ["MigDeviceConfig cannot configure request 'whole'"]


def test_a_main_request_name_covers_alternatives_it_may_not_fit() -> None:
    assert lint(claim(("either", MIG_CONFIG)), "dgx-a100", "mig") == []
    [finding] = lint(claim(("either/g", MIG_CONFIG)), "dgx-a100", "mig")
    assert "request 'either/g'" in finding.message


def test_kind_fit_needs_a_profile_or_cluster() -> None:
    assert lint(claim(("whole", MIG_CONFIG))) == []


def test_class_config_that_fits_none_of_its_devices_is_reported() -> None:
    text = """apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: mig-mps.example.com}
spec:
  selectors:
  - cel: {expression: 'device.attributes["gpu.dra-driver.dev"].type == "mig"'}
  config:
  - opaque:
      driver: gpu.dra-driver.dev
      parameters: {apiVersion: gpu.dra-driver.dev/v1alpha1, kind: GpuConfig, sharing: {strategy: MPS}}
"""
    [finding] = lint(text, "dgx-h100")
    assert finding.field == "spec.config[0].opaque.parameters.kind"
    assert finding.message.startswith("GpuConfig cannot configure the devices this class selects: on profile dgx-h100")
