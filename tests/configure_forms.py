"""Configure forms for tests (named by dotted path in CONNECT_SETTINGS['CONFIGURE_FORM'])."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from connect_settings.forms import SecretField


def _no_spaces(value: str) -> None:
    # Quotes the value on purpose: the save must not echo a secret through this message.
    if " " in value:
        raise ValidationError(f"{value} contains a space.")


class RequiredSecretForm(forms.Form):
    name = forms.CharField(max_length=20)
    password = SecretField(validators=[_no_spaces], max_length=40)


class ListedSecretForm(forms.Form):
    """A secret declared through ``secret_fields`` on a field that is not a SecretField."""

    secret_fields = ("pin",)
    label = forms.CharField(required=False)
    pin = forms.IntegerField(required=False, min_value=0)


class TypesForm(forms.Form):
    when = forms.DateField(required=False, initial=datetime.date(2024, 1, 31))
    amount = forms.DecimalField(
        required=False, max_digits=6, decimal_places=2, initial=Decimal("1.50")
    )
    colours = forms.MultipleChoiceField(
        required=False, choices=[("red", "Red"), ("blue", "Blue")], widget=forms.SelectMultiple
    )
    size = forms.ChoiceField(
        choices=[("s", "Small"), ("l", "Large")], widget=forms.RadioSelect, initial="s"
    )
    maybe = forms.NullBooleanField(required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("size") == "l" and "red" in (cleaned.get("colours") or []):
            raise ValidationError("Large comes in blue only.")
        return cleaned


class WrongSecretFieldsForm(forms.Form):
    secret_fields = ("nope",)
    a = forms.CharField()


NotAForm = object()
