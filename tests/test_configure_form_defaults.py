"""default_values is computed once per form class when it cannot change between instances, a
save builds a single form instance (the bound one), and to_json skips the encoding round trip
for values that are JSON already."""

from __future__ import annotations

import datetime
import itertools
import json
import uuid
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django import forms
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext_lazy, override

from connect_settings.configuration import save_configuration
from connect_settings.forms import build_form, default_values, effective_values, to_json

pytestmark = pytest.mark.django_db


class StaticForm(forms.Form):
    name = forms.CharField(initial="Support")
    tags = forms.MultipleChoiceField(choices=[("a", "A"), ("b", "B")], initial=["a"])


_counter = itertools.count(1)


class CallableInitialForm(forms.Form):
    n = forms.IntegerField(initial=lambda: next(_counter))


class TranslatedInitialForm(forms.Form):
    name = forms.CharField(initial=gettext_lazy("Yes"))


class InitInForm(forms.Form):
    name = forms.CharField(initial="a")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].initial = next(_counter)


def _count_instances() -> Any:
    original = forms.BaseForm.__init__
    calls: list[type[forms.BaseForm]] = []

    def counting(self: forms.BaseForm, *args: Any, **kwargs: Any) -> None:
        calls.append(type(self))
        original(self, *args, **kwargs)

    return calls, mock.patch.object(forms.BaseForm, "__init__", counting)


def test_static_defaults_build_no_form_after_the_first_call():
    assert default_values(StaticForm) == {"name": "Support", "tags": ["a"]}
    calls, patch = _count_instances()
    with patch:
        first = default_values(StaticForm)
        first["tags"].append("b")  # a caller's copy: the next caller must not see it
        assert default_values(StaticForm) == {"name": "Support", "tags": ["a"]}
        assert effective_values(StaticForm, {"name": "Ops", "gone": 1}) == {
            "name": "Ops",
            "tags": ["a"],
        }
    assert calls == []


@pytest.mark.parametrize("form_class", [CallableInitialForm, InitInForm])
def test_defaults_that_can_change_are_computed_for_every_call(form_class):
    first, second = default_values(form_class), default_values(form_class)
    assert first != second  # a fresh instance each time, as before the cache


def test_translated_defaults_follow_the_active_language():
    with override("en"):
        assert default_values(TranslatedInitialForm) == {"name": "Yes"}
    with override("de"):
        assert default_values(TranslatedInitialForm) == {"name": "Ja"}


def test_build_form_takes_the_effective_values_it_is_given():
    form = build_form(StaticForm, {"name": "stored"}, values={"name": "given", "tags": []})
    assert form.initial == {"name": "given", "tags": []}


def test_a_save_builds_one_form(connect_tenant):
    save_configuration(connect_tenant, {"team_name": "Ops"})  # warm: defaults computed once
    calls, patch = _count_instances()
    with patch:
        result = save_configuration(connect_tenant, {"team_name": "Platform"})
    assert result.changed == ["team_name"]
    assert len(calls) == 1, calls


@pytest.mark.parametrize(
    "value",
    [
        "text",
        "",
        0,
        -7,
        True,
        None,
        ["a", "b"],
        [],
        [1, "a", None],
        1.5,
        Decimal("2.50"),
        datetime.date(2024, 2, 29),
        [datetime.time(12, 30)],
        {"a": (1, 2)},
        uuid.UUID(int=5),
        gettext_lazy("Yes"),
    ],
)
def test_to_json_is_the_encoding_round_trip(value):
    expected = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    result = to_json(value)
    assert result == expected and type(result) is type(expected)
    if isinstance(value, list):
        assert result is not value  # a copy: the cleaned data is not shared
