"""Watching every call a case makes into the implementation, for every lab, without opting in.

``Case.call`` hands its run function ``guarded(lab)`` instead of the lab package: a view of it
whose classes and functions defined in the package are wrapped, so that every call from a case
into the implementation (and every call those objects make on each other's guarded methods,
e.g. ``Sequential.backward`` calling each layer's ``backward``) is checked:

* **Arguments are not modified.** Every NumPy array (and, when PyTorch is already imported,
  every tensor) passed positionally or by keyword is copied before the call and compared
  exactly after it; a change raises ``Feedback("ReLU.backward modified its grad_output in
  place: 5 entries changed; compute into a new array")``. Only arguments are checked: a case
  may change ``Parameter.data`` itself, and methods may change what they own.
* **Gradients have the right shape.** A module's ``backward`` must receive a gradient shaped
  like its last ``forward`` output and return one shaped like that forward's input; the
  error names the module by its place in its parent ("Sequential.layers[2] (Linear)").
* **Shape errors are said in the lab's terms.** A ``ValueError``/``TypeError`` from a shape
  mismatch inside student code gets the shapes of the call's arguments, of the module's
  parameters and of its last forward input, and hints (a transpose, a keepdims, the batch
  axis).

The classes handed out are subclasses of the package's classes (``isinstance`` works both
ways), created once per class; objects the package creates itself are not watched.
"""

from __future__ import annotations

import copyreg
import functools
import inspect
import re
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np


class Feedback(Exception):
    """A problem the grader found in the student's code, phrased for the student (no traceback needed)."""


# How ``loading.student_traceback`` marks a Feedback without a student traceback: the runner
# then reports the case as failed (not as "your code raised an error") and drops the tag.
FEEDBACK_TAG = "the grader found: "


_state = threading.local()


def _stack() -> list[dict[str, Any]]:
    if not hasattr(_state, "stack"):
        _state.stack, _state.forward = [], {}
    return _state.stack


def _forward_shapes() -> dict[int, tuple[Any, tuple[int, ...] | None, tuple[int, ...] | None]]:
    _stack()
    return _state.forward


def reset() -> None:
    """Forgets what earlier calls recorded (called at the start of every case)."""
    _state.stack, _state.forward = [], {}


# ----------------------------------------------------------------------------- snapshots


def _torch() -> Any:
    return sys.modules.get("torch")  # never imported here: only if the lab already uses it


def _snapshot(value: object) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().clone()
    return None


def _changed(before: Any, after: object) -> str | None:
    """How ``after`` differs from the snapshot ``before`` (None if it is the same, exactly)."""
    if isinstance(before, np.ndarray):
        now = np.asarray(after)
        if now.shape != before.shape or now.dtype != before.dtype:
            return f"its shape/dtype changed from {before.shape} {before.dtype} to {now.shape} {now.dtype}"
        with np.errstate(invalid="ignore"):
            same = (now == before) | ((now != now) & (before != before))  # NaN stays NaN
        n = int(np.size(same) - np.count_nonzero(same))
    else:
        torch = _torch()
        now = after.detach()  # type: ignore[attr-defined]
        if tuple(now.shape) != tuple(before.shape) or now.dtype != before.dtype:
            return f"its shape/dtype changed from {tuple(before.shape)} to {tuple(now.shape)}"
        same = (now == before) | (torch.isnan(now) & torch.isnan(before)) if now.is_floating_point() \
            else (now == before)
        n = int(same.numel() - int(same.sum()))
    return None if n == 0 else f"{n} {'entry' if n == 1 else 'entries'} changed"


def _shape(value: object) -> tuple[int, ...] | None:
    if isinstance(value, np.ndarray):
        return value.shape
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return None


# ----------------------------------------------------------------------------- names and shapes


def _place(instance: object) -> str:
    """'Sequential.layers[2]' when a guarded call on a container that holds ``instance`` is running, else ''."""
    for frame in reversed(_stack()):
        parent = frame["self"]
        if parent is None or parent is instance:
            continue
        for attr, value in vars(parent).items() if hasattr(parent, "__dict__") else ():
            if value is instance:
                return f"{type(parent).__name__}.{attr}"
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if item is instance:
                        return f"{type(parent).__name__}.{attr}[{i}]"
        return ""
    return ""


def _module_shapes(instance: object) -> list[str]:
    """'weight (3, 5)' for every parameter-like attribute (``.data`` an array) of a module."""
    out = []
    for name, value in (vars(instance).items() if hasattr(instance, "__dict__") else ()):
        data = getattr(value, "data", None)
        if isinstance(data, np.ndarray) and not isinstance(value, np.ndarray):
            grad = getattr(value, "grad", None)
            extra = f", {name}.grad {grad.shape}" if isinstance(grad, np.ndarray) and grad.shape != data.shape else ""
            out.append(f"{name} {data.shape}{extra}")
    return out


_SHAPE_IN_TEXT = re.compile(r"\((\d+(?:,\s*\d+)*),?\)")


def shape_hints(message: str, batch: int | None) -> list[str]:
    """Hints from the shapes a NumPy shape error mentions: transposes, keepdims, the batch axis."""
    shapes = [tuple(int(s) for s in m.split(",") if s.strip()) for m in _SHAPE_IN_TEXT.findall(message)]
    shapes = list(dict.fromkeys(shapes))
    hints = []
    for i, a in enumerate(shapes):
        for b in shapes[i + 1:]:
            if len(a) == 2 and a == b[::-1] and a[0] != a[1]:
                hints.append(f"{a} vs {b}: one of them is transposed (a .T too many or too few?)")
            elif a == (1, *b) or b == (1, *a):
                hints.append(f"{a} vs {b}: a reduction with keepdims=True where the result needs no "
                             "extra axis (or the other way round)?")
            elif batch and len(a) == 1 == len(b) and batch in (a[0], b[0]) and a != b:
                hints.append(f"{a} vs {b}: {batch} is the batch size N; a sum or mean over the wrong axis "
                             "(axis=0 sums over the batch)?")
    m = re.search(r"size (\d+) is different from (\d+)", message)
    if m and not hints:
        hints.append("in a @ b the last axis of a must have the size of the first axis of b: check which "
                     "operand needs a transpose (see the math section of the handout)")
    return hints


def _is_shape_error(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, ValueError) and any(s in text for s in (
        "could not be broadcast", "broadcast shape", "matmul", "shapes", "cannot reshape", "shape mismatch",
        "dimension", "aligned"))


# ----------------------------------------------------------------------------- the wrapper


def _describe_args(bound: inspect.BoundArguments) -> str:
    parts = [f"{name} {shape}" for name, value in bound.arguments.items()
             if name != "self" and (shape := _shape(value)) is not None]
    return ", ".join(parts) if parts else "no array arguments"


def _shape_feedback(label: str, instance: object, bound: inspect.BoundArguments | None, exc: BaseException) -> Feedback:
    lines = [f"the shape error happened in {label}"]
    if bound is not None:
        lines.append(f"  its arguments: {_describe_args(bound)}")
    if instance is not None:
        params = _module_shapes(instance)
        if params:
            lines.append(f"  {type(instance).__name__}'s parameters: {'; '.join(params)}")
        fwd = _forward_shapes().get(id(instance))
        if fwd and fwd[0] is instance and fwd[1] is not None and label.endswith(".backward"):
            lines.append(f"  its last forward: input {fwd[1]} -> output {fwd[2]}")
    frame = _stack()[-1] if _stack() else None
    if frame and frame["children"]:
        prev_label, prev_shape = frame["children"][-1]
        lines.append(f"  the call before it returned shape {prev_shape}: {prev_label}")
    batch = None
    if bound is not None:
        first = next((v for k, v in bound.arguments.items() if k != "self" and _shape(v)), None)
        shape = _shape(first)
        batch = shape[0] if shape else None
    lines += [f"  hint: {h}" for h in shape_hints(str(exc), batch)]
    return Feedback("\n".join(lines))


def _wrap(fn: Callable[..., Any], qualname: str, is_method: bool) -> Callable[..., Any]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    method = fn.__name__

    @functools.wraps(fn)
    def guarded_call(*args: Any, **kwargs: Any) -> Any:
        instance = args[0] if is_method and args else None
        if instance is not None:
            where = _place(instance)
            label = f"{type(instance).__name__}.{method}" + (f" ({where})" if where else "")
        else:
            label = qualname
        try:
            bound = sig.bind(*args, **kwargs) if sig is not None else None
        except TypeError:
            bound = None
        named = [(k, v) for k, v in bound.arguments.items() if k != "self"] if bound is not None else \
            [(f"argument {i}", v) for i, v in enumerate(args[1:] if is_method else args)]
        if bound is not None:  # **kwargs / *args collected into one entry: look inside
            expanded = []
            for k, v in named:
                if isinstance(v, dict) and sig.parameters[k].kind is inspect.Parameter.VAR_KEYWORD:
                    expanded += list(v.items())
                elif isinstance(v, tuple) and sig.parameters[k].kind is inspect.Parameter.VAR_POSITIONAL:
                    expanded += [(f"{k}[{i}]", item) for i, item in enumerate(v)]
                else:
                    expanded.append((k, v))
            named = expanded
        snaps = [(k, v, s) for k, v in named if (s := _snapshot(v)) is not None]
        first_shape = next((s for _, v, _ in snaps if (s := _shape(v)) is not None), None)
        shapes = _forward_shapes()
        stack = _stack()
        if stack:
            parent_frame = stack[-1]
            if instance is not None and parent_frame["self"] is not None and method == "backward":
                parent_frame.setdefault("backward_children", []).append((instance, snaps[0][1] if snaps else None))
        if instance is not None and method == "backward" and first_shape is not None:
            fwd = shapes.get(id(instance))
            if fwd and fwd[0] is instance and fwd[2] is not None and fwd[2] != first_shape:
                raise Feedback(_bad_upstream(label, snaps[0][0], first_shape, fwd, instance))
        stack.append({"self": instance, "label": label, "children": [], "args": named})
        try:
            result = fn(*args, **kwargs)
        except Feedback:
            raise
        except (ValueError, TypeError) as exc:
            if _is_shape_error(exc):
                raise _shape_feedback(label, instance, bound, exc) from exc
            if isinstance(exc, TypeError) and "only integer scalar arrays can be converted" in str(exc):
                raise Feedback(f"{label} raised TypeError: {exc}\n  hint: NumPy's reductions take an AXIS as "
                               "their second argument (np.max(a, axis)), so np.max(0, x) or np.max(x, 0) is not an "
                               "elementwise maximum: that is np.maximum(x, 0)") from exc
            raise
        finally:
            stack.pop()
        for name, value, before in snaps:
            change = _changed(before, value)
            if change:
                raise Feedback(f"{label} modified its {name} in place: {change}; compute into a new array "
                               "(the caller still uses it)")
        out_shape = _shape(result)
        if stack:
            stack[-1]["children"].append((label, out_shape))
        if instance is not None and method == "forward":
            shapes[id(instance)] = (instance, first_shape, out_shape)
        elif instance is not None and method == "backward" and out_shape is not None and stack:
            # Only inside another call (e.g. Sequential.backward), where the wrong shape would surface in
            # the NEXT layer; a case's own call is judged by the case's checks.
            fwd = shapes.get(id(instance))
            if fwd and fwd[0] is instance and fwd[1] is not None and fwd[1] != out_shape:
                raise Feedback(f"{label} returned a gradient of shape {out_shape}, but its forward input had "
                               f"shape {fwd[1]}: backward returns dL/d(input), shaped like the input"
                               + "".join(f"\n  hint: {h}" for h in shape_hints(f"{out_shape} {fwd[1]}", None)))
        return result

    guarded_call.__gradelab_guarded__ = True  # type: ignore[attr-defined]
    return guarded_call


def _bad_upstream(label: str, arg: str, got: tuple[int, ...], fwd: Any, instance: object) -> str:
    text = (f"{label} received {arg} of shape {got}, but its forward returned shape {fwd[2]}: "
            f"the gradient passed to backward must have the shape of the forward output")
    stack = _stack()
    parent = stack[-1] if stack else None
    if parent is not None and parent["self"] is not None:
        own_upstream = next((v for k, v in parent["args"] if _shape(v) is not None), None)
        calls = parent.get("backward_children", [])
        siblings = _children_of(parent["self"])
        if own_upstream is not None and any(v is own_upstream for _, v in calls[-1:]) and calls[:-1]:
            text += (f"\n  hint: {type(parent['self']).__name__}.backward passed its own grad_output again; "
                     "each layer must get what the layer after it returned (chain them)")
        elif siblings and len(siblings) > 1 and calls and calls[0][0] is siblings[0]:
            text += (f"\n  hint: {type(parent['self']).__name__}.backward started with the FIRST layer; the "
                     "chain rule goes from the last layer to the first")
        elif siblings and instance is not siblings[-1] and calls and len(calls) >= 2 \
                and calls[-1][1] is calls[-2][1]:
            text += (f"\n  hint: {type(parent['self']).__name__}.backward passed the same gradient to two "
                     "layers; each layer must get what the layer after it returned (chain them)")
    return text


def _children_of(parent: object) -> list[object]:
    for value in (vars(parent).values() if hasattr(parent, "__dict__") else ()):
        if isinstance(value, (list, tuple)) and value and all(hasattr(v, "backward") for v in value):
            return list(value)
    return []


# ----------------------------------------------------------------------------- the package view


def _defined_in(obj: object, package: str) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == package or module.startswith(package + ".")


# Public methods, and these two. Private helpers (``_scale(g)``) are the student's internals: they
# may work in place on arrays their own code made, so they are never wrapped.
_GUARDED_METHODS = {"__call__", "__init__"}


def _guard_class(cls: type, package: str) -> type:
    cached = cls.__dict__.get("__gradelab_guarded_class__")
    if isinstance(cached, type) and cached.__base__ is cls:
        return cached
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                 "__doc__": cls.__doc__}
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not _defined_in(klass, package):
            continue
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            if (name.startswith("_") and name not in _GUARDED_METHODS) or not inspect.isfunction(value):
                continue
            namespace[name] = _wrap(value, f"{cls.__name__}.{name}", is_method=True)
    namespace["__reduce_ex__"] = _reduce_as(cls)
    meta = _meta(type(cls))
    guarded = meta(cls.__name__, (cls,), namespace)
    guarded.__gradelab_origin__ = cls
    try:
        type.__setattr__(cls, "__gradelab_guarded_class__", guarded)
    except (TypeError, AttributeError):
        pass
    return guarded


def _reduce_as(origin: type) -> Callable[[Any, int], Any]:
    """``__reduce_ex__`` that pickles (and deep-copies) an instance as one of ``origin``: pickle finds
    classes by name, and the name leads to the package's own class, not to the guarded subclass."""

    def reduce_ex(self: Any, protocol: int) -> Any:
        reduced = super(type(self), self).__reduce_ex__(protocol)
        if isinstance(reduced, tuple) and len(reduced) >= 2 and reduced[0] is copyreg.__newobj__ \
                and reduced[1] == (type(self),):
            # copyreg.__newobj__ insists on the object's own class; _reconstructor makes an ``origin``
            reduced = (copyreg._reconstructor, (origin, object, None), *reduced[2:])
        return reduced

    return reduce_ex


@functools.cache
def _meta(base: type) -> type:
    """A metaclass under which ``isinstance(obj, GuardedLinear)`` is ``isinstance(obj, Linear)``."""

    def instancecheck(cls: type, obj: object) -> bool:
        origin = cls.__dict__.get("__gradelab_origin__")
        return isinstance(obj, origin) if origin is not None else base.__instancecheck__(cls, obj)

    def subclasscheck(cls: type, sub: type) -> bool:
        origin = cls.__dict__.get("__gradelab_origin__")
        return issubclass(sub, origin) if origin is not None else base.__subclasscheck__(cls, sub)

    return type(f"Guarded{base.__name__}", (base,), {"__instancecheck__": instancecheck,
                                                     "__subclasscheck__": subclasscheck})


class GuardedPackage(ModuleType):
    """The lab package as the cases see it: its own classes and functions wrapped by the guard."""

    def __init__(self, module: ModuleType, package: str | None = None) -> None:
        super().__init__(module.__name__, module.__doc__)
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_package", package or module.__name__)
        object.__setattr__(self, "_cache", {})

    def __getattr__(self, name: str) -> Any:
        cache = object.__getattribute__(self, "_cache")
        if name in cache:
            return cache[name]
        module, package = object.__getattribute__(self, "_module"), object.__getattribute__(self, "_package")
        value = getattr(module, name)
        if isinstance(value, type) and _defined_in(value, package):
            value = _guard_class(value, package)
        elif inspect.isfunction(value) and _defined_in(value, package):
            value = _wrap(value, value.__qualname__, is_method=False)
        elif isinstance(value, ModuleType) and _defined_in(value, package) \
                or isinstance(value, ModuleType) and value.__name__.startswith(package + "."):
            value = GuardedPackage(value, package)
        cache[name] = value
        return value

    def __dir__(self) -> list[str]:
        return dir(object.__getattribute__(self, "_module"))


def guarded(module: ModuleType) -> ModuleType:
    """The view of ``module`` (the lab package) whose calls are checked; see the module docstring."""
    return module if isinstance(module, GuardedPackage) else GuardedPackage(module)
