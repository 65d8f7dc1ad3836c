"""Django's tasks framework: ``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2."""

from __future__ import annotations

try:  # Django >= 6.0
    from django.tasks import task, task_backends
except ImportError:  # Django 5.2: the backport has the same API
    from django_tasks import task, task_backends  # type: ignore[no-redef]

__all__ = ["task", "task_backends"]
