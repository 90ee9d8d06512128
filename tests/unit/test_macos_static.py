"""macOS, checked statically on Linux (nothing macOS runs here: no Darling, no VM).

- ``QuartzPoster``'s ctypes declarations (what ``QuartzSink`` hands CoreGraphics) against the signatures Apple's
  headers give, as PyObjC's generated ``_metadata.py`` records them in the pinned ``pyobjc-framework-Quartz`` and
  ``pyobjc-framework-ApplicationServices`` wheels (e.g. ``CGEventPost: b"vI^{__CGEvent=}"``). A wrong width, a
  missing ``restype`` on a function that returns a pointer (ctypes would cut it to a C int), a struct passed as a
  pointer: each shows here, not as a crash on the Mac.
- ``resources/Info.plist`` and the spec's ``BUNDLE`` values: bundle ID, ``LSUIElement``, the minimum system version
  (the person's Mac is an M2 Ultra on macOS 14), the usage strings macOS shows.

The wheels are fetched once into ``build/cache/macos-wheels/`` (no PyPI: skipped in one line).
"""

from __future__ import annotations

import ast
import ctypes
import plistlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from noizylab_desktop.services.display import inject_macos

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "cache" / "macos-wheels"
PYOBJC = "13.0"
WHEELS = {
    "pyobjc-framework-Quartz": "Quartz/CoreGraphics/_metadata.py",
    "pyobjc-framework-ApplicationServices": "HIServices/_metadata.py",
    "pyobjc-framework-Cocoa": "CoreFoundation/_metadata.py",
}


def metadata_functions(package: str) -> dict[str, bytes]:
    """Function name → encoded signature, read (not run: it imports objc) from the wheel's ``_metadata.py``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    pattern = package.replace("-", "_").lower() + f"-{PYOBJC}-*.whl"
    found = sorted(CACHE.glob(pattern))
    if not found:
        fetched = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", "macosx_14_0_arm64", "--python-version", "3.11", "-d", str(CACHE),
             f"{package}=={PYOBJC}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        found = sorted(CACHE.glob(pattern))
        if fetched.returncode != 0 or not found:
            pytest.skip(f"cannot fetch {package}=={PYOBJC} from PyPI: {fetched.stderr.strip().splitlines()[-1:]}")
    with zipfile.ZipFile(found[-1]) as wheel:
        tree = ast.parse(wheel.read(WHEELS[package]))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["functions"]:
            assert isinstance(node.value, ast.Dict)
            # An entry is (signature, ...); the few that pick by architecture (sel32or64(...)) are left out.
            return {
                ast.literal_eval(k): v.elts[0].value
                for k, v in zip(node.value.keys, node.value.values, strict=True)
                if k is not None and isinstance(v, ast.Tuple) and isinstance(v.elts[0], ast.Constant)
            }
    raise AssertionError(f"no functions table in {package}'s {WHEELS[package]}")


# Objective-C type codes (LP64, as on Apple silicon) → (kind, size): "int"/"uint"/"float"/"bool"/"void"/"pointer"
SCALARS = {
    "c": ("int", 1), "C": ("uint", 1), "B": ("bool", 1), "Z": ("bool", 1), "s": ("int", 2), "S": ("uint", 2),
    "T": ("uint", 2), "i": ("int", 4), "I": ("uint", 4), "l": ("int", 4), "L": ("uint", 4), "q": ("int", 8),
    "Q": ("uint", 8), "f": ("float", 4), "d": ("float", 8), "v": ("void", 0),
}  # fmt: skip
QUALIFIERS = "rnNoORV"


def split_types(encoded: str) -> list[str]:
    """``b"^{__CGEvent=}^{__CGEventSource=}I{CGPoint=dd}I"`` → ``["^{__CGEvent=}", "^{__CGEventSource=}", ...]``."""
    out, i = [], 0
    while i < len(encoded):
        start = i
        while encoded[i] in QUALIFIERS:
            i += 1
        while encoded[i] == "^":
            i += 1
        if encoded[i] == "{":
            depth = 0
            while True:
                depth += {"{": 1, "}": -1}.get(encoded[i], 0)
                i += 1
                if depth == 0:
                    break
        else:
            i += 1
        out.append(encoded[start:i].lstrip(QUALIFIERS))
    return out


def objc_shape(code: str) -> Any:
    """A comparable shape of one encoded type: a pointer, a struct's member shapes, or a scalar's (kind, size)."""
    if code.startswith("^") or code in ("@", "*", "#", ":"):  # pointers, an object (CFTypeRef), a C string...
        return ("pointer", 8)
    if code.startswith("{"):
        members = code[code.index("=") + 1 : -1]
        return ("struct", tuple(objc_shape(m) for m in split_types(members)))
    return SCALARS[code]


def ctypes_shape(kind: Any) -> Any:
    """The same shape of a ctypes declaration (None: void)."""
    if kind is None:
        return ("void", 0)
    if kind is ctypes.c_void_p or (isinstance(kind, type) and issubclass(kind, ctypes._Pointer)):
        return ("pointer", 8)
    if isinstance(kind, type) and issubclass(kind, ctypes.Structure):
        return ("struct", tuple(ctypes_shape(t) for _, t in kind._fields_))
    if kind is ctypes.c_bool:
        return ("bool", 1)
    if kind in (ctypes.c_float, ctypes.c_double):
        return ("float", ctypes.sizeof(kind))
    signed = kind(-1).value == -1  # type: ignore[operator]
    return ("int" if signed else "uint", ctypes.sizeof(kind))


class Declared:
    """What a ctypes function object is given: ``argtypes`` and ``restype`` (ctypes' default: C int)."""

    def __init__(self) -> None:
        self.argtypes: list[Any] | None = None
        self.restype: Any = ctypes.c_int
        self.restype_set = False

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "restype":
            object.__setattr__(self, "restype_set", True)
        object.__setattr__(self, name, value)


class Library:
    """Stands for ApplicationServices: records each function's declarations."""

    def __init__(self) -> None:
        self.functions: dict[str, Declared] = {}

    def __getattr__(self, name: str) -> Declared:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.functions.setdefault(name, Declared())


@pytest.fixture(scope="module")
def declared() -> dict[str, Declared]:
    library = Library()
    loaded: list[str] = []

    def load(path: str) -> Library:
        loaded.append(path)
        return library

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ctypes.cdll, "LoadLibrary", load)
        inject_macos.QuartzPoster()
    assert loaded == ["/System/Library/Frameworks/ApplicationServices.framework/ApplicationServices"]
    return library.functions


@pytest.fixture(scope="module")
def apple() -> dict[str, bytes]:
    """Every function's signature in the three frameworks the poster calls into."""
    return {name: sig for package in WHEELS for name, sig in metadata_functions(package).items()}


def test_every_function_quartz_poster_declares_matches_apples_signature(
    declared: dict[str, Declared], apple: dict[str, bytes]
) -> None:
    assert {"CGEventCreateMouseEvent", "CGEventPost", "AXIsProcessTrusted", "CFRelease"} <= set(declared)
    wrong = []
    for name, fn in sorted(declared.items()):
        assert name in apple, f"{name} is in none of {', '.join(WHEELS)}: not a public function"
        returns, *arguments = split_types(apple[name].decode())
        want_return = objc_shape(returns)
        if want_return == ("void", 0):
            ok_return = not fn.restype_set or fn.restype is None  # ctypes' default int is read and ignored
        else:
            ok_return = fn.restype_set and ctypes_shape(fn.restype) == want_return
        if not ok_return:
            wrong.append(f"{name} returns {returns}, declared {fn.restype if fn.restype_set else 'C int (default)'}")
        if arguments and fn.argtypes is None:
            wrong.append(f"{name} takes {arguments}: no argtypes declared")
        elif fn.argtypes is not None and [ctypes_shape(a) for a in fn.argtypes] != [objc_shape(a) for a in arguments]:
            wrong.append(f"{name} takes {arguments}, declared {fn.argtypes}")
    assert not wrong, "\n".join(wrong)


def test_the_comparison_catches_a_wrong_width_and_a_missing_restype() -> None:
    """The check above can fail: a 32-bit flags argument and a pointer result left as a C int are both caught."""
    returns, *arguments = split_types("v^{__CGEvent=}Q")
    assert [ctypes_shape(a) for a in [ctypes.c_void_p, ctypes.c_uint32]] != [objc_shape(a) for a in arguments]
    assert ctypes_shape(ctypes.c_int) != objc_shape("^{__CGEvent=}")
    assert split_types("^{__CGEvent=}^{__CGEventSource=}I{CGPoint=dd}I")[3] == "{CGPoint=dd}"
    assert objc_shape("{CGPoint=dd}") == ctypes_shape(inject_macos.CGPoint)


PLIST = ROOT / "resources" / "Info.plist"
SPEC = ROOT / "packaging" / "noizylab.spec"
MAC_TARGET = (14, 0)  # the person's Mac (M2 Ultra, macOS 14); the wheels are resolved for macosx_14_0_arm64


def test_info_plist_is_a_tray_only_app_with_a_reverse_dns_id_and_its_usage_strings() -> None:
    with PLIST.open("rb") as handle:
        info = plistlib.load(handle)
    assert re.fullmatch(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*){2,}", info["CFBundleIdentifier"])
    assert info["CFBundlePackageType"] == "APPL" and info["CFBundleName"] == "NOIZYLAB"
    assert info["LSUIElement"] is True, "a tray app: no Dock icon, no menu bar of its own"
    minimum = tuple(int(p) for p in info["LSMinimumSystemVersion"].split("."))
    assert minimum <= MAC_TARGET, f"LSMinimumSystemVersion {minimum} would refuse the person's macOS 14"
    assert info["NSHighResolutionCapable"] is True
    # The local network prompt (macOS 14 asks before an app reaches other machines on the LAN) shows this string.
    assert len(info["NSLocalNetworkUsageDescription"]) > 20
    assert not {k for k in info if k.startswith("CFBundle") and "Version" in k}, "versions come from the package"


def test_the_spec_bundles_that_plist_under_the_app_name_with_the_package_version() -> None:
    tree = ast.parse(SPEC.read_text())
    bundles = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "BUNDLE"]
    assert len(bundles) == 1
    keywords = {k.arg: k.value for k in bundles[0].keywords}
    assert ast.literal_eval(keywords["name"]) == "NOIZYLAB.app"
    assert ast.unparse(keywords["bundle_identifier"]) == "info_plist['CFBundleIdentifier']"
    assert ast.unparse(keywords["info_plist"]) == "info_plist" and ast.unparse(keywords["version"]) == "VERSION"
    source = SPEC.read_text()
    assert 'info_plist["CFBundleShortVersionString"] = VERSION' in source and "Info.plist" in source
