"""Container Device Interface specs: model, naming and version rules (pure) and the atomic spec writer (I/O).

- ``model``: ``Spec`` / ``Device`` / ``ContainerEdits`` / ``DeviceNode`` / ``Mount`` / ``Hook``, validated on
  construction, ``to_json()`` with ``cdiVersion`` set to the minimum the content needs; ``share(edits)`` for
  edits made once and put in many specs (validated and rendered once);
- ``version``: ``minimum_version(spec)``, the CDI project's minimum-version rules;
- ``names``: kind and device-name rules, qualified IDs ``vendor/class=name``, spec file names;
- ``files`` / ``atomic``: ``write_spec``, ``remove_spec``, ``list_specs`` with temp file + fsync + rename.

See docs/cdi.md.
"""

from dra_driver.cdi.files import list_specs, remove_spec, remove_stale_temp_files, write_spec
from dra_driver.cdi.model import ContainerEdits, Device, DeviceNode, Hook, Mount, Spec, share
from dra_driver.cdi.names import claim_device_name, parse_qualified_id, qualified_id, spec_file_name
from dra_driver.cdi.version import CURRENT, EARLIEST, minimum_version

__all__ = [
    "CURRENT",
    "EARLIEST",
    "ContainerEdits",
    "Device",
    "DeviceNode",
    "Hook",
    "Mount",
    "Spec",
    "claim_device_name",
    "list_specs",
    "minimum_version",
    "parse_qualified_id",
    "qualified_id",
    "remove_spec",
    "remove_stale_temp_files",
    "share",
    "spec_file_name",
    "write_spec",
]
