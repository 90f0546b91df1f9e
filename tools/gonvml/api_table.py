"""Regenerate ``nvml_sim/nvml_api.json``: the C prototype of every NVML symbol an NVML client may bind.

The table is read from the NVML header that NVIDIA's Go bindings ship (``pkg/nvml/nvml.h`` of the go-nvml
module pinned in ``tools/gonvml/go.mod``, taken from the Go module cache after ``go mod download``), and
lists every function that header declares (the unversioned names of ``NVML_NO_UNVERSIONED_FUNC_DEFS``
included), each with the clients that bind it: ``go-nvml`` (the ``C.nvml*`` calls of ``pkg/nvml/nvml.go``)
and ``pynvml`` (the ``_nvmlGetFunctionPointer("...")`` names of the installed ``nvidia-ml-py``). For the types
of their parameters it records only what a caller's ABI needs: a handle (an opaque pointer; go-nvml's copy of
the header wraps each in a one-pointer struct, which the ABI passes the same way), an enum, a struct or union
(always passed by pointer: the generator refuses a header that passes one by value) or the scalar a typedef
stands for.

    python -m tools.gonvml.api_table [--check]   # needs Go (to find the module) and pynvml
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pynvml

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "nvml_sim" / "nvml_api.json"
GO_MODULE = "github.com/NVIDIA/go-nvml"
FUNCTION = re.compile(
    r"(?:DEPRECATED\([^)]*\)\s*)?(nvmlReturn_t|const DECLDIR char\s*\*|const char\s*\*)\s*(?:DECLDIR\s+)?(\w+)\s*\(([^)]*)\)\s*;"
)
SCALARS = {"void", "char", "int", "long", "short", "unsigned", "signed", "float", "double", "const"}


def go_module_dir() -> tuple[str, Path]:
    """(version, directory) of the go-nvml module that tools/gonvml/go.mod requires, downloaded if needed."""
    here = Path(__file__).resolve().parent
    info = subprocess.run(
        ["go", "mod", "download", "-json", GO_MODULE], cwd=here, capture_output=True, text=True, check=True
    )
    data = json.loads(info.stdout)
    return str(data["Version"]), Path(data["Dir"])


def _strip(header: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", header, flags=re.S).replace("\\\n", " ")
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"#ifdef __cplusplus.*?#endif", " ", text, flags=re.S)  # extern "C" { ... }
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _statements(text: str) -> list[str]:
    """Top-level ``;``-terminated statements, whitespace collapsed."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ";" and depth == 0:
            out.append(" ".join(text[start : i + 1].split()))
            start = i + 1
    return out


def typedefs(statements: list[str]) -> dict[str, str]:
    """Type name -> handle | enum | struct | union | <scalar C type> | alias:<other type>."""
    kinds: dict[str, str] = {}
    for st in statements:
        if not st.startswith("typedef "):
            continue
        body = st[len("typedef ") : -1].strip()
        declarators = (body.rsplit("}", 1)[-1] if "}" in body else body.split(None, 1)[-1]).split(",")
        head = body.split("{", 1)[0].split()
        for declarator in declarators:
            name = re.findall(r"\w+", declarator)[-1]
            if re.match(r"struct \{ struct \w+ ?\* ?handle; \}", body) or (head[0] == "struct" and "*" in declarator):
                kinds[name] = "handle"  # go-nvml wraps NVML's handle pointers in a struct: the same ABI
            elif head[0] in ("struct", "union", "enum"):
                kinds[name] = head[0]
            elif set(head[:-1]) <= SCALARS:
                kinds[name] = " ".join(head[:-1])
            else:
                kinds[name] = "alias:" + head[0]
    for name, kind in list(kinds.items()):
        while kind.startswith("alias:"):
            kind = kinds[kind[len("alias:") :]]
        kinds[name] = kind
    return kinds


def _param_types(params: str) -> list[str]:
    if params.strip() in ("", "void"):
        return []
    return [re.findall(r"\w+", p)[:-1][-1] for p in params.split(",")]


def by_value_aggregates(proto: str, kinds: dict[str, str]) -> list[str]:
    params = proto[proto.index("(") + 1 : proto.rindex(")")]
    if params.strip() in ("", "void"):
        return []
    return [
        p.strip()
        for p in params.split(",")
        if "*" not in p and "[" not in p and kinds.get(_param_types(p)[0], "") in ("struct", "union")
    ]


def table(header: str, go_source: str, version: str) -> dict[str, object]:
    statements = _statements(_strip(header))
    kinds = typedefs(statements)
    go = set(re.findall(r"C\.(nvml\w+)\(", go_source))
    py_source = Path(pynvml.__file__).read_text()
    py = set(re.findall(r'_nvmlGetFunctionPointer\("(nvml\w+)"\)', py_source))
    functions: dict[str, dict[str, object]] = {}
    for st in statements:
        m = FUNCTION.fullmatch(st)
        if m is None:
            continue
        ret, name, params = (
            " ".join(m.group(1).replace("DECLDIR", "").split()).replace(" *", "*"),
            m.group(2),
            " ".join(m.group(3).split()),
        )
        proto = f"{ret} {name}({params or 'void'})"
        by = [c for c, names in (("go-nvml", go), ("pynvml", py)) if name in names]
        functions[name] = {"c": proto, "by": by}
    missing = sorted((go | py) - set(functions))
    if missing:
        raise SystemExit(f"bound but not declared in the header: {', '.join(missing)}")
    used = {t for f in functions.values() for t in re.findall(r"\bnvml\w+_t\b", str(f["c"]))} - {"nvmlReturn_t"}
    odd = [str(f["c"]) for f in functions.values() if by_value_aggregates(str(f["c"]), kinds)]
    if odd:
        raise SystemExit("structs passed by value (the simulator declares them opaque): " + "; ".join(odd))
    return {
        "source": f"{GO_MODULE} {version} pkg/nvml/nvml.h; nvidia-ml-py {pynvml_version()}",
        "types": {t: kinds[t] for t in sorted(used)},
        "functions": dict(sorted(functions.items())),
    }


def pynvml_version() -> str:
    from importlib.metadata import version

    return version("nvidia-ml-py")


def render() -> str:
    version, module = go_module_dir()
    data = table((module / "pkg/nvml/nvml.h").read_text(), (module / "pkg/nvml/nvml.go").read_text(), version)
    return json.dumps(data, indent=1) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python -m tools.gonvml.api_table", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
