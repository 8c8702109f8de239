"""A fitted model's structure as Python source: scikit-learn code that builds the same, unfitted,
estimator (``Pipeline([...])`` and the rest) from its ``get_params()``.

TPOT 1.x has no ``export()``, and this service's baselines are plain estimators, so the source
is written here for whatever the model is: every estimator as its class (imported from the
shortest public module that has it) with the parameters that differ from the class's defaults,
nested estimators, lists and dicts written the same way. What cannot be written as a literal
(a fitted ``RandomState``, a graph) is left as ``None`` with a comment, and listed in
``Source.unwritten``; nothing here reproduces the feature extraction or the fitted state.
"""
from __future__ import annotations

import importlib
import inspect
import math
import re
from dataclasses import dataclass, field

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_COMMENT = "\x00"  # where a comment starts, until the layout puts the comma before it
_MAX_DEPTH = 40
_MAX_ARRAY_ITEMS = 10_000


@dataclass
class Source:
    """The ``model = ...`` expression, the imports it needs, and what it could not write."""

    expression: str
    imports: dict[str, set[str]] = field(default_factory=dict)   # module -> names
    unwritten: list[str] = field(default_factory=list)            # "path: why"

    def module(self, header: str = "", footer: str = "") -> str:
        """A Python module: the docstring ``header``, the imports, ``model = <expression>``."""
        safe = header.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        lines = [f'"""{safe}\n"""'] if header else []
        for module in sorted(self.imports):
            names = sorted(self.imports[module])
            if names == ["*module*"]:
                lines.append(f"import {module}")
            else:
                real = [n for n in names if n != "*module*"]
                if "*module*" in names:
                    lines.append(f"import {module}")
                lines.append(f"from {module} import {', '.join(real)}")
        lines += ["", f"model = {self.expression.replace(_COMMENT, '  # ')}", ""]
        if footer:
            lines += [footer.rstrip(), ""]
        return "\n".join(lines)


def model_source(model) -> Source:
    """The source building ``model``'s estimator structure with its parameters."""
    source = Source("")
    source.expression = _Writer(source).value(model, "model", 0, indent=0)
    return source


class _Writer:
    def __init__(self, source: Source):
        self.source = source

    def need(self, module: str, name: str) -> None:
        self.source.imports.setdefault(module, set()).add(name)

    def skip(self, path: str, why: str) -> str:
        self.source.unwritten.append(f"{path}: {why}")
        return f"None{_COMMENT}not written: {why}"

    def value(self, value, path: str, depth: int, indent: int) -> str:
        if depth > _MAX_DEPTH:
            return self.skip(path, "nested too deeply")
        if value is None or isinstance(value, (bool, str, bytes)):
            return repr(value)
        if isinstance(value, int):
            return repr(int(value))
        if isinstance(value, float):
            return _float(value, self)
        module = type(value).__module__ or ""
        if module == "numpy" or module.startswith("numpy."):
            return self.numpy(value, path)
        if isinstance(value, (list, tuple)):
            return self.sequence(value, path, depth, indent)
        if isinstance(value, dict):
            return self.mapping(value, path, depth, indent)
        if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
            return self.reference(value, path)
        if hasattr(value, "get_params") and not inspect.isclass(value):
            return self.estimator(value, path, depth, indent)
        return self.skip(path, f"a {type(value).__name__}, which has no literal form")

    def numpy(self, value, path: str) -> str:
        import numpy as np

        if isinstance(value, np.generic):
            return self.value(value.item(), path, 0, 0)
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" \
                and value.size <= _MAX_ARRAY_ITEMS:
            self.need("numpy", "*module*")
            items = [_float(v, self) if isinstance(v, float) else repr(v)
                     for v in value.ravel().tolist()]
            shape = "" if value.ndim == 1 else f".reshape({value.shape!r})"
            return f"numpy.array([{', '.join(items)}], dtype={str(value.dtype)!r}){shape}"
        if isinstance(value, np.random.RandomState):
            return self.skip(path, "a numpy RandomState (its state is not reproduced); set an "
                             "integer seed")
        return self.skip(path, f"a numpy {type(value).__name__}")

    def sequence(self, value, path: str, depth: int, indent: int) -> str:
        items = [self.value(v, f"{path}[{i}]", depth + 1, indent + 4) for i, v in enumerate(value)]
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        if isinstance(value, tuple) and len(items) == 1:
            close = ",)"
        return _layout(open_, items, close, indent)

    def mapping(self, value: dict, path: str, depth: int, indent: int) -> str:
        items = [f"{self.value(k, path, depth + 1, indent + 4)}: "
                 f"{self.value(v, f'{path}[{k!r}]', depth + 1, indent + 4)}"
                 for k, v in value.items()]
        return _layout("{", items, "}", indent)

    def reference(self, value, path: str) -> str:
        """A class or function, by the shortest public module path that reaches it."""
        name = getattr(value, "__qualname__", getattr(value, "__name__", ""))
        module = public_module(value)
        if module is None or "<" in name or not all(map(_IDENTIFIER.match, name.split("."))):
            return self.skip(path, f"{name or value!r} cannot be imported by name")
        top = name.split(".")[0]
        self.need(module, top)
        return name

    def estimator(self, value, path: str, depth: int, indent: int) -> str:
        cls = type(value)
        name = self.reference(cls, path)
        if _COMMENT in name:
            return name
        try:
            params = value.get_params(deep=False)
        except Exception as err:  # noqa: BLE001 - a third-party estimator's get_params
            return self.skip(path, f"{cls.__name__}.get_params() failed ({type(err).__name__})")
        defaults, open_ended = _defaults(cls)
        arguments = []
        for key, given in params.items():
            if key in defaults and _same(given, defaults[key]):
                continue
            if key not in defaults and open_ended and given is None:
                continue  # ``**kwargs`` estimators (XGBoost): None is their default
            arguments.append(f"{key}={self.value(given, f'{path}.{key}', depth + 1, indent + 4)}")
        return _layout(f"{name}(", arguments, ")", indent)


def public_module(obj) -> str | None:
    """The shortest module path from which ``obj`` imports as itself: ``sklearn.ensemble`` for
    ``sklearn.ensemble._forest.ExtraTreesClassifier``; None if there is none."""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", None))
    if not module or not name or module == "__main__":
        return None
    parts = module.split(".")
    top = name.split(".")[0]
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i])
        if any(p.startswith("_") for p in parts[1:i]):
            break
        try:
            found = importlib.import_module(candidate)
        except Exception:  # noqa: BLE001 - importing a package may fail for its own reasons
            continue
        if getattr(found, top, None) is _top(obj, top):
            return candidate
    return module


def _top(obj, top: str):
    """The module-level object ``top`` of ``obj``'s module (``obj`` itself, or its class)."""
    module = importlib.import_module(obj.__module__)
    return getattr(module, top, None)


def _defaults(cls) -> tuple[dict, bool]:
    """The constructor's defaults, and whether it also takes ``**kwargs``."""
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return {}, False
    return ({name: p.default for name, p in parameters.items()
             if p.default is not inspect.Parameter.empty},
            any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()))


def _same(a, b) -> bool:
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                       and not isinstance(a, bool) and not isinstance(b, bool)):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b) and repr(a) == repr(b)
    except Exception:  # noqa: BLE001 - e.g. arrays, whose == is elementwise
        return False


def _float(value: float, writer: _Writer) -> str:
    if math.isfinite(value):
        return repr(float(value))
    writer.need("math", "*module*")
    return "math.nan" if math.isnan(value) else ("math.inf" if value > 0 else "-math.inf")


def _layout(open_: str, items: list[str], close: str, indent: int) -> str:
    """On one line when short, else one item per line (a comment after the item's comma)."""
    flat = open_ + ", ".join(items) + close
    if len(flat) + indent <= 88 and "\n" not in flat and _COMMENT not in flat:
        return flat
    pad = " " * (indent + 4)
    lines = []
    for item in items:
        code, _, comment = item.rpartition("\n")[2].partition(_COMMENT)
        head = item.rpartition("\n")[0]
        last = f"{code},  # {comment}" if comment else f"{code},"
        lines.append(pad + (f"{head}\n{last}" if head else last))
    return open_ + "\n" + "\n".join(lines) + "\n" + " " * indent + close.lstrip(",")
