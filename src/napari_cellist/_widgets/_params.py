"""magicgui controls built from a params dataclass (field names, defaults, ``metadata``).

``metadata`` keys: ``help`` (tooltip), ``advanced`` (folded under "Advanced"), ``choices``,
``min``/``max``. ``X | None`` numbers are text boxes where empty means "automatic".
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, SpinBox

AUTO = ""


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


def _control(field_: Any, hint: Any) -> Any:
    meta = dict(field_.metadata)
    base, optional = _unwrap_optional(hint)
    value = _default(field_)
    common = {"name": field_.name, "label": field_.name.replace("_", " "), "tooltip": meta.get("help", "")}
    if "choices" in meta:
        return ComboBox(choices=list(meta["choices"]), value=value, **common)
    if base is bool:
        return CheckBox(value=bool(value), **common)
    if optional or base not in (int, float):
        text = AUTO if value is None else (",".join(map(str, value)) if isinstance(value, tuple) else str(value))
        return LineEdit(value=text, **common)
    spin = SpinBox if base is int else FloatSpinBox
    limits = {"min": meta.get("min", -1e9 if base is float else -(10**9)), "max": meta.get("max", 1e9 if base is float else 10**9)}
    if base is float:
        limits["step"] = meta.get("step", 0.05 if abs(value or 0) < 5 else 1.0)
    return spin(value=value, **common, **limits)


class ParamsForm(Container):
    """Controls for one params dataclass, with the advanced ones in a second, foldable group."""

    def __init__(self, params_type: type) -> None:
        super().__init__(labels=True)
        self.params_type = params_type
        self._hints = typing.get_type_hints(params_type)
        self._fields = list(fields(params_type))
        basic = [f for f in self._fields if not f.metadata.get("advanced")]
        advanced = [f for f in self._fields if f.metadata.get("advanced")]
        self.controls = {}
        for field_ in basic:
            self.controls[field_.name] = _control(field_, self._hints[field_.name])
            self.append(self.controls[field_.name])
        self.show_advanced = CheckBox(value=False, label="advanced", tooltip="Show the advanced parameters.")
        self.advanced = Container(labels=True, visible=False)
        for field_ in advanced:
            self.controls[field_.name] = _control(field_, self._hints[field_.name])
            self.advanced.append(self.controls[field_.name])
        if advanced:
            self.append(self.show_advanced)
            self.append(self.advanced)
            self.show_advanced.changed.connect(self._toggle_advanced)

    def _toggle_advanced(self, visible: bool) -> None:
        self.advanced.visible = visible

    def value(self) -> Any:
        """The params dataclass for the current control values.

        Raises
        ------
        ValueError
            If a text box holds something that is not a number where one is needed.
        """
        kwargs = {}
        for field_ in self._fields:
            control = self.controls[field_.name]
            kwargs[field_.name] = self._convert(field_, control.value)
        return self.params_type(**kwargs)

    def _convert(self, field_: Any, raw: Any) -> Any:
        base, optional = _unwrap_optional(self._hints[field_.name])
        if not isinstance(raw, str) or base is str:
            return raw
        text = raw.strip()
        if text == AUTO and optional:
            return None
        try:
            if typing.get_origin(base) is tuple or base is tuple:
                inner = (typing.get_args(base) or (float,))[0]
                inner = float if inner is Ellipsis else inner
                return tuple(_parse_scalar(inner, v.strip()) for v in text.split(",") if v.strip())
            return base(text)
        except (TypeError, ValueError):
            raise ValueError(f"'{field_.name.replace('_', ' ')}' must be a {getattr(base, '__name__', base)}, got {text!r}.") from None

    def set_value(self, params: Any) -> None:
        """Show the values of a params dataclass."""
        for field_ in self._fields:
            control = self.controls[field_.name]
            value = getattr(params, field_.name)
            if isinstance(control, LineEdit):
                control.value = AUTO if value is None else (",".join(map(str, value)) if isinstance(value, tuple) else str(value))
            else:
                control.value = value


def _parse_scalar(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return text.lower() in ("true", "1", "yes")
    return kind(text)


def section(title: str) -> Label:
    """A bold section title."""
    return Label(value=f"<b>{title}</b>")
