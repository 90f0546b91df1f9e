"""DRA device selectors in CEL, evaluated the way kube-scheduler evaluates them. Pure (no I/O).

``compile_selector(expression)`` → ``Selector`` (cached by expression; raises ``CelCompileError``);
``Selector.matches(device_view(driver, device_dict))`` → bool (raises ``CelEvalError``);
``Selector.matches_source`` answers the same, remembering results by the device fields the expression
reads (``memo``), so devices with equal fields share one evaluation and their views need not be built.
Quantities and versions are exact Python values (``Quantity``, ``Semver``) outside CEL.
"""

from dra_driver.cel.device import AttributeValue, DeviceView, device_view, split_qualified_name
from dra_driver.cel.environment import Selector, compile_selector
from dra_driver.cel.errors import CelCompileError, CelError, CelEvalError
from dra_driver.cel.quantity import Quantity, parse_quantity
from dra_driver.cel.semver import Semver, parse_semver

__all__ = [
    "AttributeValue",
    "CelCompileError",
    "CelError",
    "CelEvalError",
    "DeviceView",
    "Quantity",
    "Selector",
    "Semver",
    "compile_selector",
    "device_view",
    "parse_quantity",
    "parse_semver",
    "split_qualified_name",
]
