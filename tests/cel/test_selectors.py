"""DRA selector semantics: the device variable, error behaviour, and the Kubernetes CEL libraries."""

from __future__ import annotations

import pytest

from dra_driver.cel import CelCompileError, CelEvalError, DeviceView, compile_selector, device_view
from dra_driver.cel.literals import index_literals

DRIVER = "gpu.dra-driver.dev"


@pytest.fixture(scope="module")
def gpu() -> DeviceView:
    return device_view(
        DRIVER,
        {
            "name": "gpu-0",
            "attributes": {
                "type": {"string": "gpu"},
                "index": {"int": 0},
                "mig": {"bool": True},
                "driverVersion": {"version": "550.54.15"},
                "resource.kubernetes.io/pcieRoot": {"string": "pci0000:00"},
            },
            "capacity": {"memory": {"value": "80Gi"}, "multiprocessors": {"value": "132"}},
        },
    )


def matches(expression: str, device: DeviceView) -> bool:
    return compile_selector(expression).matches(device)


ATTRS = f'device.attributes["{DRIVER}"]'
CAPS = f'device.capacity["{DRIVER}"]'


@pytest.mark.parametrize(
    "expression",
    [
        f'device.driver == "{DRIVER}"',
        f'{ATTRS}.type == "gpu"',
        f"{ATTRS}.index == 0 && {ATTRS}.mig",
        'device.attributes["resource.kubernetes.io"].pcieRoot == "pci0000:00"',
        "device.allowMultipleAllocations == false",
        f'{CAPS}.memory.compareTo(quantity("80Gi")) == 0',
        f'{CAPS}.memory == quantity("81920Mi")',
        f'{CAPS}.memory.isGreaterThan(quantity("40Gi")) && {CAPS}.memory.isLessThan(quantity("100Gi"))',
        f'{CAPS}.memory.sub(quantity("16Gi")).add(1).asInteger() == 64 * 1024 * 1024 * 1024 + 1',
        f"{CAPS}.multiprocessors.isInteger() && {CAPS}.multiprocessors.asApproximateFloat() == 132.0",
        'sign(quantity("-1")) == -1 && isQuantity("1Gi") && !isQuantity("1GB")',
        f'{ATTRS}.driverVersion.isGreaterThan(semver("550.0.0"))',
        f'{ATTRS}.driverVersion.compareTo(semver("550.54.15")) == 0',
        f"{ATTRS}.driverVersion.major() == 550 && {ATTRS}.driverVersion.minor() == 54",
        f'{ATTRS}.driverVersion == semver("550.54.15+build")',
        'semver("v1.2", true).patch() == 0 && isSemver("1.2.3") && !isSemver("1.2")',
        f"type({CAPS}.memory) == kubernetes.Quantity && type({ATTRS}.driverVersion) == kubernetes.Semver",
    ],
)
def test_device_fields_quantities_and_versions_evaluate_like_kubernetes(expression: str, gpu: DeviceView) -> None:
    assert matches(expression, gpu)


@pytest.mark.parametrize(
    "expression",
    [
        f'{ATTRS}.?model.orValue("none") == "none"',
        f"!has({ATTRS}.model)",
        'device.attributes["other.example.com"].size() == 0',
        '!has(device.attributes["other.example.com"].model)',
        '!("other.example.com" in device.attributes)',
        f'"{DRIVER}" in device.attributes',
        f'cel.bind(g, {ATTRS}, g.type == "gpu" && g.index < 4)',
        f'{ATTRS}.type.upperAscii() == "GPU" && "a,b".split(",").size() == 2',
        'sets.contains(["a", "b"], ["a"])',
        "[3, 1, 2].sort() == [1, 2, 3] && lists.range(2) == [0, 1]",
        "[1, 2, 3].exists(i, v, i == 2 && v == 3)",
        '"nvidia-h100".find("h[0-9]+") == "h100" && "a1b2".findAll("[0-9]") == ["1", "2"]',
        "[1, 2, 3].isSorted() && ![2, 1].isSorted() && [1, 2, 3].sum() == 6",
        '[3, 1, 2].min() == 1 && ["a", "c"].max() == "c"',
    ],
)
def test_optional_access_unknown_domains_and_extensions(expression: str, gpu: DeviceView) -> None:
    assert matches(expression, gpu)


def test_unknown_attribute_is_an_evaluation_error_with_the_schedulers_hint(gpu: DeviceView) -> None:
    with pytest.raises(CelEvalError) as info:
        matches(f'{ATTRS}.model == "H100"', gpu)
    assert info.value.message.startswith("no such key: model. consider using CEL optional chaining")


def test_attribute_of_an_unknown_domain_is_an_evaluation_error(gpu: DeviceView) -> None:
    with pytest.raises(CelEvalError, match="no such key: model"):
        matches('device.attributes["other.example.com"].model == "x"', gpu)


def test_errors_absorbed_by_logical_operators_do_not_fail_the_selector(gpu: DeviceView) -> None:
    assert matches(f'{ATTRS}.model == "x" || {ATTRS}.type == "gpu"', gpu)
    assert not matches(f'{ATTRS}.type == "cpu" && {ATTRS}.model == "x"', gpu)


def test_bare_attribute_names_belong_to_the_drivers_domain_only() -> None:
    other = device_view("other.example.com", {"name": "d", "attributes": {"type": {"string": "nic"}}})
    assert matches('device.attributes["other.example.com"].type == "nic"', other)
    assert not matches(f"{ATTRS}.?type.hasValue()", other)


def test_min_of_an_empty_list_is_an_evaluation_error(gpu: DeviceView) -> None:
    with pytest.raises(CelEvalError, match="min called on empty list"):
        matches("[].min() == 0", gpu)


def test_non_boolean_result_is_an_evaluation_error(gpu: DeviceView) -> None:
    with pytest.raises(CelEvalError, match="could not be converted to bool"):
        matches(f"{ATTRS}.index", gpu)


def test_comparing_a_version_with_a_quantity_is_an_evaluation_error(gpu: DeviceView) -> None:
    with pytest.raises(CelEvalError, match="no such overload"):
        matches(f'{ATTRS}.driverVersion.compareTo(quantity("1")) == 0', gpu)


def test_malformed_quantity_literal_fails_at_evaluation(gpu: DeviceView) -> None:
    with pytest.raises(CelEvalError, match="quantities must match"):
        matches('quantity("ten") == quantity("10")', gpu)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("device.attributes[", "Syntax error"),
        ("1 + 1", "must evaluate to bool or the unknown type, not int"),
        ('quantity("1") < quantity("2")', "found no matching overload for '_<_'"),
        ('quantity("1").sign() == 1', "undeclared reference to 'sign'"),
        ("nosuchfunction(device)", "undeclared reference"),
    ],
)
def test_compile_errors_name_the_problem_and_position(expression: str, fragment: str) -> None:
    with pytest.raises(CelCompileError) as info:
        compile_selector(expression)
    assert fragment in info.value.message
    assert info.value.expression == expression
    assert str(info.value).startswith('Invalid value: "' + expression.replace('"', '\\"') + '": ')
    if "Syntax" in fragment:
        assert info.value.message.startswith("compilation failed: ERROR: <input>:1:")
        assert "parsetree" not in info.value.message


def test_compiled_selectors_and_their_errors_are_cached() -> None:
    expression = f'{ATTRS}.type == "cached"'
    assert compile_selector(expression) is compile_selector(expression)
    with pytest.raises(CelCompileError) as first:
        compile_selector("1 +")
    with pytest.raises(CelCompileError) as second:
        compile_selector("1 +")
    assert first.value is second.value


def test_device_with_an_unusable_attribute_fails_every_selector() -> None:
    broken = device_view(DRIVER, {"name": "d", "attributes": {"v": {"version": "1.0"}, "x": {"string": "y"}}})
    assert broken.invalid is not None
    with pytest.raises(CelEvalError, match="attribute v: parse semantic version"):
        matches("true", broken)
    empty = device_view(DRIVER, {"name": "d", "attributes": {"v": {}}})
    with pytest.raises(CelEvalError, match="attribute v: unsupported attribute value"):
        matches("true", empty)


def test_multi_allocatable_flag_and_list_attributes_are_visible() -> None:
    shared = device_view(
        DRIVER, {"name": "d", "allowMultipleAllocations": True, "attributes": {"ids": {"ints": [1, 2]}}}
    )
    assert matches(f"device.allowMultipleAllocations && 2 in {ATTRS}.ids", shared)


def test_index_literals_finds_literal_map_keys_only() -> None:
    expression = 'device.attributes["a.example"].x == "b" && "c" in device.attributes // ["d"]\n && m[\'e\' ]'
    assert index_literals(expression) == frozenset({"a.example", "e"})
    assert index_literals(r'm["with\"escape"] && m[r"raw\d"]') == frozenset({r"raw\d"})
