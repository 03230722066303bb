"""magicgui controls built from a params dataclass (field names, defaults, ``metadata``).

``metadata`` keys: ``help`` (tooltip), ``advanced`` (folded under "Advanced"), ``choices``
(a dropdown; for a tuple field a multi-selection list), ``suggestions`` (a dropdown of the usual
values), ``min``/``max``. ``X | None`` numbers are text boxes where empty means "automatic".

Every number a form shows is the number the model gets: small rates (learning rates, weight
decays) are text boxes in scientific notation (``1e-05``), other floats spin boxes with enough
decimals for their default and for values a user types.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields, replace
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    Select,
    SpinBox,
)

AUTO = ""
#: decimals of every float spin box: 0.0001 steps, enough for thresholds and fractions
SPIN_DECIMALS = 4


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(hint))
    return hint, False


def _default(field_: Any) -> Any:
    if field_.default is not MISSING:
        return field_.default
    if field_.default_factory is not MISSING:
        return field_.default_factory()
    return None


def _tuple_item(base: Any) -> Any | None:
    """The item type of a ``tuple[X, ...]`` hint (None when ``base`` is not a tuple)."""
    if typing.get_origin(base) is not tuple and base is not tuple:
        return None
    args = [a for a in typing.get_args(base) if a is not Ellipsis]
    return args[0] if args else float


def format_number(value: Any) -> str:
    """Text of a number that reads back as the same number (``0.002``, ``1e-05``, ``30.0``)."""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _as_text(value: Any) -> str:
    if value is None:
        return AUTO
    if isinstance(value, tuple):
        return ",".join(format_number(v) for v in value)
    return format_number(value)


def is_small_rate(name: str, value: Any) -> bool:
    """Floats shown as text in scientific notation: rates and decays, or defaults below 0.01."""
    small = isinstance(value, float) and value != 0 and abs(value) < 0.01
    return small or name.endswith(("learning_rate", "weight_decay"))


UNITS = {"_s": " (s)", "_px": " (px)"}


def _label(name: str) -> str:
    """``time_limit_s`` -> ``time limit (s)``."""
    for suffix, unit in UNITS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)].replace("_", " ") + unit
    return name.replace("_", " ")


def _control(field_: Any, hint: Any) -> Any:
    meta = dict(field_.metadata)
    base, optional = _unwrap_optional(hint)
    value = _default(field_)
    common = {"name": field_.name, "label": _label(field_.name), "tooltip": meta.get("help", "")}
    item = _tuple_item(base)
    if item is not None and (item is bool or "choices" in meta):
        options = list(meta.get("choices", (False, True)))
        return Select(choices=options, value=list(value or ()), **common)
    if "choices" in meta or "suggestions" in meta:
        options = list(meta.get("choices", meta.get("suggestions", ())))
        if value is not None and value not in options:
            options.append(value)
        return ComboBox(choices=options, value=value, **common)
    if base is bool:
        return CheckBox(value=bool(value), **common)
    if (
        optional
        or base not in (int, float)
        or (base is float and is_small_rate(field_.name, value))
    ):
        return LineEdit(value=_as_text(value), **common)
    limits = {
        "min": meta.get("min", -1e9 if base is float else -(10**9)),
        "max": meta.get("max", 1e9 if base is float else 10**9),
    }
    if base is int:
        return SpinBox(value=value, **common, **limits)
    step = meta.get("step", 0.05 if abs(value or 0) < 5 else 1.0)
    return FloatSpinBox(value=value, step=step, **common, **limits)


def _spin_decimals(control: Any) -> None:
    if isinstance(control, FloatSpinBox):
        control.native.setDecimals(SPIN_DECIMALS)


class ParamsForm(Container):
    """Controls for one params dataclass, with the advanced ones in a second, foldable group.

    Parameters
    ----------
    params_type : type
        A (frozen) params dataclass.
    hidden : tuple of str
        Fields the surrounding widget sets itself (e.g. a checkpoint chosen with a file
        control): no control; :meth:`value` takes them from the last :meth:`set_value` (else
        their defaults).
    """

    def __init__(self, params_type: type, hidden: tuple[str, ...] = ()) -> None:
        super().__init__(labels=True)
        self.params_type = params_type
        self._hints = typing.get_type_hints(params_type)
        self._hidden = {f.name: _default(f) for f in fields(params_type) if f.name in hidden}
        self._fields = [f for f in fields(params_type) if f.name not in hidden]
        basic = [f for f in self._fields if not f.metadata.get("advanced")]
        advanced = [f for f in self._fields if f.metadata.get("advanced")]
        self.controls: dict[str, Any] = {}
        for field_ in basic:
            self.append(self._make(field_))
        self.show_advanced = CheckBox(
            value=False, label="advanced", tooltip="Show the advanced parameters."
        )
        self.advanced = Container(labels=True, visible=False)
        for field_ in advanced:
            self.advanced.append(self._make(field_))
        if advanced:
            self.append(self.show_advanced)
            self.append(self.advanced)
            self.show_advanced.changed.connect(self._toggle_advanced)

    def _make(self, field_: Any) -> Any:
        control = _control(field_, self._hints[field_.name])
        _spin_decimals(control)
        if isinstance(control, FloatSpinBox):
            control.value = _default(field_)  # again, now that the box keeps enough decimals
        elif isinstance(control, Select):
            _fit_list_height(control)
        elif isinstance(control, LineEdit):
            control.native.setCursorPosition(0)  # show the start of a long list of numbers
        self.controls[field_.name] = control
        return control

    def _toggle_advanced(self, visible: bool) -> None:
        self.advanced.visible = visible

    def value(self) -> Any:
        """The params dataclass for the current control values.

        Raises
        ------
        ValueError
            If a text box holds something that is not a number where one is needed.
        """
        kwargs = dict(self._hidden)
        for field_ in self._fields:
            control = self.controls[field_.name]
            kwargs[field_.name] = self._convert(field_, control.value)
        return self.params_type(**kwargs)

    def _convert(self, field_: Any, raw: Any) -> Any:
        base, optional = _unwrap_optional(self._hints[field_.name])
        item = _tuple_item(base)
        if isinstance(raw, (list, tuple)) and item is not None:
            options = list(self.controls[field_.name].choices)
            return tuple(sorted(raw, key=options.index))  # in the order of the list
        if not isinstance(raw, str) or base is str:
            return raw
        text = raw.strip()
        if text == AUTO and optional:
            return None
        try:
            if item is not None:
                return tuple(_parse_scalar(item, v.strip()) for v in text.split(",") if v.strip())
            return _parse_scalar(base, text)
        except (TypeError, ValueError):
            kind = getattr(base, "__name__", str(base))
            raise ValueError(f"'{_label(field_.name)}' must be a {kind}, got {text!r}.") from None

    def set_value(self, params: Any) -> None:
        """Show the values of a params dataclass (e.g. those a model version was fitted with)."""
        for name in self._hidden:
            self._hidden[name] = getattr(params, name)
        for field_ in self._fields:
            control = self.controls[field_.name]
            value = getattr(params, field_.name)
            if isinstance(control, LineEdit):
                control.value = _as_text(value)
            elif isinstance(control, Select):
                control.value = list(value or ())
            elif isinstance(control, ComboBox) and value not in control.choices:
                control.choices = [*control.choices, value]
                control.value = value
            else:
                control.value = value

    def with_values(self, **values: Any) -> Any:
        """:meth:`value` with some fields replaced (values the widget sets itself)."""
        return replace(self.value(), **values)


def _fit_list_height(control: Any) -> None:
    """A multi-selection list as tall as its items (Qt's default is ~190 px)."""
    native = control.native
    rows = max(1, native.count())
    native.setMaximumHeight(rows * max(native.sizeHintForRow(0), 16) + 2 * native.frameWidth() + 4)


def _parse_scalar(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return text.lower() in ("true", "1", "yes")
    return kind(text)


def section(title: str) -> Label:
    """A bold section title."""
    return Label(value=f"<b>{title}</b>")
