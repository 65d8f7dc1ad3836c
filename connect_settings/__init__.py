"""connect_settings: an Atlassian Connect back end for Django."""

__version__ = "0.1.0"
