"""The demo's configuration, declared once as a form: the configure page, its validation, the
Django admin and the history all follow from it (``CONNECT_SETTINGS['CONFIGURE_FORM']``)."""

from django import forms
from django.core.validators import RegexValidator

from connect_settings.forms import LineListField, SecretField

PRIORITIES = [("low", "Low"), ("medium", "Medium"), ("high", "High")]
CHANNELS = [("email", "Email"), ("slack", "Slack"), ("teams", "Microsoft Teams")]


class DemoSettingsForm(forms.Form):
    team_name = forms.CharField(
        label="Team name",
        max_length=80,
        initial="Support",
        help_text="Shown at the top of the issue panel.",
    )
    default_priority = forms.ChoiceField(
        label="Default priority", choices=PRIORITIES, initial="medium"
    )
    notify = forms.BooleanField(
        label="Notify the team when an issue is escalated", required=False, initial=True
    )
    results_per_page = forms.IntegerField(
        label="Results per page", min_value=1, max_value=100, initial=25
    )
    channels = forms.MultipleChoiceField(
        label="Notification channels",
        choices=CHANNELS,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=["email"],
    )
    project_keys = LineListField(
        label="Projects",
        required=False,
        max_items=50,
        item_validators=[
            RegexValidator(r"^[A-Z][A-Z0-9_]{1,9}$", "Use a project key such as SUP or OPS.")
        ],
        help_text="One project key per line; leave empty for every project.",
    )
    api_token = SecretField(
        label="Escalation service API token",
        required=False,
        max_length=200,
        help_text="Stored for this site only and never shown again.",
    )
