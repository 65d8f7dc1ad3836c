"""The configure form: loading it, secret fields, and converting between form and stored JSON.

An integrating project declares its settings as a plain ``django.forms.Form`` named by
``CONNECT_SETTINGS['CONFIGURE_FORM']``. Field types, labels, help texts, defaults
(``initial``) and validation all come from it. A field is *secret* when it is a
:class:`SecretField` (or any field with ``secret = True``) or when its name is listed in the
form's ``secret_fields``; :func:`secret_field_names` is the one place that answers the
question (the page, the admin, history and system checks all ask it).

Stored values are one JSON object per tenant ``{field name: JSON value}``; secrets are stored
like the rest but never leave the server in clear: wherever values are shown they go through
:func:`redact`, which replaces a secret by ``{"secret": true, "set": <bool>}``.
"""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from django import forms
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.functional import Promise
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from .conf import connect_settings

__all__ = [
    "EmptyConfigureForm",
    "LineListField",
    "SecretField",
    "SecretInput",
    "build_form",
    "configure_form_class",
    "default_values",
    "effective_values",
    "field_kind",
    "is_redacted",
    "redact",
    "redacted_secret",
    "secret_field_names",
    "to_json",
]


class SecretInput(forms.PasswordInput):
    """A password box that never renders the stored value, with "a value is set" and a
    "clear" checkbox (``<name>__clear``) once there is one.

    An empty box (or the redacted marker) keeps the stored value, "clear" removes it, any other
    input replaces it. The stored value is given per form instance by :func:`build_form`; it
    is only ever returned as data, never rendered.
    """

    template_name = "connect_settings/widgets/secret_input.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"autocomplete": "off", "spellcheck": "false", **(attrs or {})})
        self.stored_value: Any = None

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, None, attrs)  # None: the value is never rendered
        context["widget"]["is_set"] = self.stored_value not in (None, "")
        context["widget"]["clear_name"] = f"{name}__clear"
        context["widget"]["clear_id"] = f"{context['widget']['attrs'].get('id', name)}__clear"
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if data.get(f"{name}__clear") in ("on", "true", "1", True):
            return None
        value = data.get(name)
        if value in (None, "") or is_redacted(value):
            return self.stored_value
        return value

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return False

    def use_required_attribute(self, initial: Any) -> bool:
        # A stored secret is kept when the box stays empty: typing is not required then.
        return self.stored_value in (None, "")


class SecretField(forms.CharField):
    """A text setting that is never shown again once saved: an API token, a password.

    Stored with the other values; redacted on the page, in JSON answers, in history and in the
    admin; never mirrored to app properties.
    """

    secret = True
    widget = SecretInput

    def __init__(self, *, strip: bool = True, **kwargs: Any) -> None:
        super().__init__(strip=strip, **kwargs)


class LineListWidget(forms.Textarea):
    """One item per line; a stored list is shown joined by newlines."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"rows": "4", **(attrs or {})})

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return super().format_value(value)


class LineListField(forms.Field):
    """A list of strings: a JSON array from API clients, one item per line from HTML forms.

    Blank items are dropped; ``max_items`` bounds the list and ``item_validators`` (and
    ``item_max_length``) check every item, with the item named in the message.
    """

    widget = LineListWidget
    default_error_messages = {
        "invalid_list": _("Enter a list of text values."),
        "max_items": _("Enter at most %(max)d items (%(count)d given)."),
        "item_too_long": _("Item %(item)s is longer than %(max)d characters."),
    }

    def __init__(
        self,
        *,
        max_items: int | None = None,
        item_max_length: int | None = 255,
        item_validators: Iterable[Any] = (),
        **kwargs: Any,
    ) -> None:
        self.max_items = max_items
        self.item_max_length = item_max_length
        self.item_validators = list(item_validators)
        kwargs.setdefault("initial", [])
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        if value in self.empty_values:
            return []
        if isinstance(value, str):
            items: list[Any] = value.splitlines()
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ValidationError(self.error_messages["invalid_list"], code="invalid_list")
        if not all(isinstance(item, str) for item in items):
            raise ValidationError(self.error_messages["invalid_list"], code="invalid_list")
        return [item.strip() for item in items if item.strip()]

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if self.max_items is not None and len(value) > self.max_items:
            raise ValidationError(
                self.error_messages["max_items"],
                code="max_items",
                params={"max": self.max_items, "count": len(value)},
            )

    def run_validators(self, value: list[str]) -> None:
        super().run_validators(value)
        errors: list[ValidationError] = []
        for item in value:
            if self.item_max_length is not None and len(item) > self.item_max_length:
                errors.append(
                    ValidationError(
                        self.error_messages["item_too_long"],
                        code="item_too_long",
                        params={"item": _short(item), "max": self.item_max_length},
                    )
                )
                continue
            for validator in self.item_validators:
                try:
                    validator(item)
                except ValidationError as err:
                    errors.extend(
                        ValidationError(f"{_short(item)}: {message}") for message in err.messages
                    )
        if errors:
            raise ValidationError(errors)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(initial) != self.to_python(data)
        except ValidationError:
            return True


def _short(item: str) -> str:
    return repr(item if len(item) <= 40 else item[:37] + "...")


class EmptyConfigureForm(forms.Form):
    """The form used when ``CONFIGURE_FORM`` is empty: nothing to configure."""


@lru_cache(maxsize=8)
@functools.lru_cache(maxsize=32)
def _import_form(path: str) -> type[forms.Form]:
    # Cached: it runs on every configure request and a module's classes do not change.
    try:
        cls = import_string(path)
    except ImportError as err:
        raise ImproperlyConfigured(
            f"CONNECT_SETTINGS['CONFIGURE_FORM'] = {path!r} cannot be imported: {err}"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, forms.BaseForm)):
        raise ImproperlyConfigured(
            f"CONNECT_SETTINGS['CONFIGURE_FORM'] = {path!r} is not a django.forms.Form class."
        )
    if issubclass(cls, forms.BaseModelForm):
        raise ImproperlyConfigured(
            f"CONNECT_SETTINGS['CONFIGURE_FORM'] = {path!r} is a ModelForm; settings are "
            "stored as JSON, so declare a plain forms.Form."
        )
    unknown = set(getattr(cls, "secret_fields", ())) - set(cls.base_fields)
    if unknown:
        raise ImproperlyConfigured(
            f"{path}.secret_fields names fields the form does not have: {sorted(unknown)}"
        )
    return cls


def configure_form_class() -> type[forms.Form]:
    """The form class named by ``CONFIGURE_FORM`` (``ImproperlyConfigured`` if it is wrong)."""
    path = connect_settings.CONFIGURE_FORM
    if not path:
        return EmptyConfigureForm
    if isinstance(path, type):
        # A class instead of a path works too (handy in tests); it gets the same checks.
        path = f"{path.__module__}.{path.__qualname__}"
    return _import_form(str(path))


def secret_field_names(form_class: type[forms.BaseForm]) -> frozenset[str]:
    """Names of the form's secret fields: ``secret = True`` fields and ``secret_fields``."""
    listed = set(getattr(form_class, "secret_fields", ()))
    marked = {n for n, f in form_class.base_fields.items() if getattr(f, "secret", False)}
    return frozenset(listed | marked)


def field_kind(field: forms.Field, *, secret: bool = False) -> str:
    """How the page's script reads a field: ``secret``, ``bool``, ``multi``, ``lines``,
    ``radio``, ``number`` or ``text``."""
    if secret:
        return "secret"
    if isinstance(field, LineListField):
        return "lines"
    if isinstance(field.widget, forms.CheckboxInput):
        return "bool"
    if getattr(field.widget, "allow_multiple_selected", False):
        return "multi"
    if isinstance(field.widget, forms.RadioSelect):
        return "radio"
    if isinstance(field.widget, forms.NumberInput):
        return "number"
    return "text"


#: Values that are already JSON as they are (exact types: a subclass may encode otherwise).
_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def to_json(value: Any) -> Any:
    """A cleaned form value as JSON (dates as ISO strings, decimals and UUIDs as strings)."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value  # most fields clean to these: no encoding round trip
    if kind is list and all(type(item) in _JSON_SCALARS for item in value):
        return list(value)
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def redacted_secret(value: Any) -> dict[str, bool]:
    return {"secret": True, "set": value not in (None, "")}


def is_redacted(value: Any) -> bool:
    """Whether ``value`` is what :func:`redact` shows for a secret (sent back: keep it)."""
    return (
        isinstance(value, dict) and value.get("secret") is True and set(value) <= {"secret", "set"}
    )


def redact(form_class: type[forms.BaseForm], values: Mapping[str, Any]) -> dict[str, Any]:
    """The form's fields from ``values``, each secret replaced by ``{"secret", "set"}``."""
    secrets = secret_field_names(form_class)
    return {
        name: redacted_secret(values.get(name)) if name in secrets else values.get(name)
        for name in form_class.base_fields
    }


def build_form(
    form_class: type[forms.BaseForm],
    stored: Mapping[str, Any],
    *,
    data: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> forms.BaseForm:
    """An instance of the configure form over a tenant's ``stored`` values.

    Unbound (``data=None``), it shows the effective values (see :func:`effective_values`);
    bound, empty secret inputs keep the stored secret. Every secret field gets a
    :class:`SecretInput`, also those only listed in ``secret_fields``. ``values``: the
    :func:`effective_values` of ``stored`` when the caller has already computed them.
    """
    if values is None:
        values = effective_values(form_class, stored)
    if data is None:
        kwargs.setdefault("initial", values)
    form = form_class(data=data, **kwargs)
    for name in secret_field_names(form_class):
        field = form.fields[name]
        if not isinstance(field.widget, SecretInput):
            field.widget = SecretInput(attrs=field.widget.attrs)
            field.widget.is_required = field.required
        field.widget.stored_value = values.get(name)
    return form


#: :func:`default_values` per form class whose defaults are the same for every instance,
#: as JSON text (each caller decodes its own copy, which it may change).
_defaults_json: weakref.WeakKeyDictionary[type[forms.BaseForm], str] = weakref.WeakKeyDictionary()


def _static_defaults(form_class: type[forms.BaseForm]) -> bool:
    """Whether every instance of the form has the same initial values: no ``initial`` is
    callable or translated (lazily, per request language), and the class changes neither how
    an instance is built nor how it reads one."""
    return (
        form_class.__init__ is forms.BaseForm.__init__
        and form_class.get_initial_for_field is forms.BaseForm.get_initial_for_field
        and not any(
            callable(f.initial) or isinstance(f.initial, Promise)
            for f in form_class.base_fields.values()
        )
    )


def default_values(form_class: type[forms.BaseForm]) -> dict[str, Any]:
    """Each field's ``initial`` as JSON (secrets have no default)."""
    cached = _defaults_json.get(form_class)
    if cached is not None:
        return json.loads(cached)
    values = _default_values(form_class)
    if _static_defaults(form_class):
        _defaults_json[form_class] = json.dumps(values)
    return values


def _default_values(form_class: type[forms.BaseForm]) -> dict[str, Any]:
    form = form_class()
    secrets = secret_field_names(form_class)
    values: dict[str, Any] = {}
    for name, f in form.fields.items():
        initial = None if name in secrets else form.get_initial_for_field(f, name)
        if initial is None:
            # The field's own "empty" ("" for text, [] for lists), as a save would store it.
            try:
                initial = f.to_python(None)
            except ValidationError:
                initial = None
        values[name] = to_json(initial)
    return values


def effective_values(form_class: type[forms.BaseForm], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The form's defaults overlaid with what is stored (only the form's fields)."""
    values = default_values(form_class)
    values.update((k, v) for k, v in stored.items() if k in values)
    return values


# --- presentation helpers for the page, its history and the admin ---------------------------


def field_rows(form: forms.BaseForm) -> list[dict[str, Any]]:
    """One entry per field for templates: the bound field, its kind and secret state."""
    secrets = secret_field_names(type(form))
    rows = []
    for bound in form:
        secret = bound.name in secrets
        widget = bound.field.widget
        use_fieldset = bool(getattr(widget, "use_fieldset", False))
        # The error box is always present (the page's script fills it) and described-by.
        described = [f"{bound.auto_id}_error"]
        if bound.help_text:
            described.insert(0, f"{bound.auto_id}_helptext")
        if secret:
            described.insert(0, f"{bound.auto_id}_state")
        attrs = {} if use_fieldset else {"aria-describedby": " ".join(described)}
        rows.append(
            {
                "field": bound,
                "widget": bound.as_widget(attrs=attrs),
                "described_by": " ".join(described),
                "kind": field_kind(bound.field, secret=secret),
                "secret": secret,
                "is_set": secret and getattr(widget, "stored_value", None) not in (None, ""),
                "use_fieldset": use_fieldset,
            }
        )
    return rows


def _choice_label(f: forms.Field, value: Any) -> str | None:
    for key, label in getattr(f, "choices", ()) or ():
        if isinstance(label, list | tuple):  # an option group
            for sub_key, sub_label in label:
                if str(sub_key) == str(value):
                    return str(sub_label)
        elif str(key) == str(value):
            return str(label)
    return None


def display_value(f: forms.Field | None, value: Any) -> str:
    """A short, human reading of a stored (or redacted) value; never a secret."""
    if is_redacted(value):
        return "set" if value.get("set") else "not set"
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(display_value(f, v) for v in value) if value else "(none)"
    if f is not None and (label := _choice_label(f, value)) is not None:
        return label
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _secret_summary(before: Any, after: Any) -> str:
    was = is_redacted(before) and bool(before.get("set"))
    now = is_redacted(after) and bool(after.get("set"))
    if was and now:
        return "replaced"
    return "set" if now else "cleared"


def describe_change(
    form_class: type[forms.BaseForm], changes: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """History entry ``{field: {"from", "to"}}`` as rows with labels and display strings."""
    fields = form_class.base_fields
    # In the form's order (a JSON column need not keep key order), then names it no longer has.
    names = [n for n in fields if n in changes] + [n for n in changes if n not in fields]
    rows = []
    for name in names:
        change = changes[name]
        f = fields.get(name)
        label = str(f.label) if f is not None and f.label else name.replace("_", " ").capitalize()
        before = change.get("from") if isinstance(change, dict) else None
        after = change.get("to") if isinstance(change, dict) else None
        secret = is_redacted(before) or is_redacted(after)
        rows.append(
            {
                "name": name,
                "label": label,
                "secret": secret,
                "from": display_value(f, before),
                "to": display_value(f, after),
                "summary": _secret_summary(before, after) if secret else "",
            }
        )
    return rows
