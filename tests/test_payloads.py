"""validate_install_payload cleans with InstallPayloadForm's fields, without a form instance:
it must agree with the form itself, field by field and on the first bad field."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms

from connect_settings.exceptions import BadRequest
from connect_settings.payloads import InstallPayloadForm, validate_install_payload
from connect_settings.testing import install_payload


def _through_the_form(data: dict[str, Any]) -> dict[str, Any] | str:
    form = InstallPayloadForm(data)
    if not form.is_valid():
        return f"'{next(iter(form.errors))}' is not valid."
    cleaned = {k: v for k, v in form.cleaned_data.items() if v not in ("", None)}
    for name in ("baseUrl", "displayUrl", "displayUrlServicedeskHelpCenter"):
        if name in cleaned:
            cleaned[name] = cleaned[name].rstrip("/")
    return cleaned


def _validated(data: dict[str, Any]) -> dict[str, Any] | str:
    try:
        return validate_install_payload(data)
    except BadRequest as err:
        return err.message


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"baseUrl": "https://x.atlassian.net/wiki/", "displayUrl": "https://help.example.com/"},
        {"displayUrl": "", "description": "   padded   ", "oauthClientId": None},
        {"baseUrl": "x.atlassian.net"},  # no scheme: assumed https
        {"baseUrl": "javascript:alert(1)"},
        {"baseUrl": "https://x.atlassian.net", "displayUrl": "not a url"},
        {"clientKey": "k" * 256, "productType": "p" * 40},  # two bad: the first is named
        {"clientKey": "  spaced  ", "sharedSecret": " secret "},  # kept as sent
        {"serverVersion": "9" * 65},
    ],
)
def test_agrees_with_the_form(overrides):
    data = {**install_payload(), **overrides}
    data = {k: v for k, v in data.items() if v is not None}
    assert _validated(dict(data)) == _through_the_form(dict(data))


def test_the_form_has_no_validation_beyond_its_fields():
    # validate_install_payload calls the fields' clean only: a clean() or clean_<field>()
    # added to the form would be skipped there, so adding one must fail here first.
    assert InstallPayloadForm.clean is forms.Form.clean
    assert not [n for n in vars(InstallPayloadForm) if n.startswith("clean_")]
