"""The configure page rendered once per distinct input; each load fills in its own token.

Rendering ``configure.html`` was the largest part of a page load's CPU. Its output depends
only on the context the view passes (the tenant's fields, the already rendered form and
history parts, the version, the mirror status ...) and on the session token, *provided the
template reads nothing else*: not the request, the user, messages, a CSRF token, a custom tag
or filter, the time. :func:`is_pure` proves that by walking the compiled template, what it
extends and what it includes, once per template name; a template (an integrator's override)
that reads anything else is rendered on every load, exactly as before.

A pure page is rendered with a placeholder where ``{{ connect_session_token }}`` stands,
kept in a per-process LRU under a key of every input, and each load replaces the
placeholder with its own freshly minted token. Nothing is cached under ``DEBUG``; a
settings change empties the cache (templates, static URLs and languages come from settings).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.template import Engine, TemplateDoesNotExist, defaultfilters, defaulttags, engines
from django.template import loader_tags as lt
from django.template.base import FilterExpression, Node, Template, TextNode, Variable, VariableNode
from django.template.loader import render_to_string
from django.templatetags.static import StaticNode

from .lru import LRU

__all__ = ["TOKEN_NAME", "clear_cache", "is_pure", "render_page"]

#: The context name of the page's session token (set by the ``connect`` context processor).
TOKEN_NAME = "connect_session_token"
#: Pages (one per tenant and state) kept per process; a page is a few kilobytes.
CACHE_SIZE = 1024

# Random per process, so no stored value or template text can contain it by accident.
_PLACEHOLDER = f"cs-token-placeholder-{secrets.token_hex(16)}"

#: Filters whose output depends on their input only (no locale, time zone, time or query).
_PURE_FILTER_NAMES = (
    "add capfirst cut default default_if_none escape_filter escapejs_filter first force_escape "
    "iriencode join json_script last length linebreaksbr lower pluralize safe slice_filter "
    "stringformat title truncatechars upper urlencode yesno"
).split()
_PURE_FILTERS = frozenset(
    f for name in _PURE_FILTER_NAMES if (f := getattr(defaultfilters, name, None)) is not None
)
#: Tags that only arrange text and the values above (their variables are checked too).
_STRUCTURE = (
    TextNode,
    defaulttags.CommentNode,
    defaulttags.LoadNode,
    defaulttags.AutoEscapeControlNode,
    defaulttags.SpacelessNode,
    defaulttags.VerbatimNode,
)


class _Impure(Exception):
    """The template reads something the cache key does not cover."""


class _Walk:
    def __init__(
        self, engine: Engine, names: Collection[str], keyed_lookups: dict[str, frozenset[str]]
    ) -> None:
        self.engine = engine
        self.names = frozenset(names)
        # name -> attributes a template may read from it (other lookups are not in the key).
        self.keyed_lookups = keyed_lookups

    def variable(self, var: Any, local: frozenset[str]) -> None:
        if not isinstance(var, Variable) or var.lookups is None:
            return  # a literal (translated ones too: the key holds the language)
        root, rest = var.lookups[0], var.lookups[1:]
        if root in local:
            return
        if root not in self.names or root == TOKEN_NAME:  # the token: only printed as is
            raise _Impure(root)
        allowed = self.keyed_lookups.get(root)
        if allowed is not None and rest and (len(rest) > 1 or rest[0] not in allowed):
            raise _Impure(".".join(var.lookups))

    def expression(self, fe: Any, local: frozenset[str]) -> None:
        if not isinstance(fe, FilterExpression):
            raise _Impure(repr(fe))
        self.variable(fe.var, local)
        for func, args in fe.filters:
            if func not in _PURE_FILTERS:
                raise _Impure(getattr(func, "__name__", repr(func)))
            for lookup, arg in args:
                if lookup:
                    self.variable(arg, local)

    def condition(self, cond: Any, local: frozenset[str]) -> None:
        if cond is None:
            return
        if isinstance(cond, defaulttags.TemplateLiteral):
            self.expression(cond.value, local)
            return
        # A smartif operator: its operands are conditions again ("not" has no second).
        if not hasattr(cond, "first"):
            raise _Impure(repr(cond))
        self.condition(cond.first, local)
        self.condition(getattr(cond, "second", None), local)

    def constant_name(self, fe: Any) -> str:
        if isinstance(fe, FilterExpression) and isinstance(fe.var, str) and not fe.filters:
            return fe.var
        raise _Impure("a template name computed at render time")

    def nodes(self, nodes: Iterable[Node], local: frozenset[str], history: list[Any]) -> None:
        for node in nodes:
            self.node(node, local, history)

    def node(self, node: Node, local: frozenset[str], history: list[Any]) -> None:
        if isinstance(node, _STRUCTURE):
            self.nodes(getattr(node, "nodelist", ()), local, history)
        elif isinstance(node, VariableNode):
            fe = node.filter_expression
            var = fe.var
            is_token = isinstance(var, Variable) and var.lookups == (TOKEN_NAME,)
            if is_token and TOKEN_NAME not in local:
                if fe.filters:  # the placeholder's length or case would be baked in
                    raise _Impure(TOKEN_NAME + " with a filter")
                return
            self.expression(fe, local)
        elif isinstance(node, defaulttags.IfNode):
            for cond, nodelist in node.conditions_nodelists:
                self.condition(cond, local)
                self.nodes(nodelist, local, history)
        elif isinstance(node, defaulttags.ForNode):
            self.expression(node.sequence, local)
            inner = local | set(node.loopvars) | {"forloop"}
            self.nodes(node.nodelist_loop, inner, history)
            self.nodes(node.nodelist_empty, local, history)
        elif isinstance(node, defaulttags.WithNode):
            for fe in node.extra_context.values():
                self.expression(fe, local)
            self.nodes(node.nodelist, local | set(node.extra_context), history)
        elif isinstance(node, lt.BlockNode):
            self.nodes(node.nodelist, local | {"block"}, history)
        elif isinstance(node, lt.ExtendsNode):
            self.nodes(node.nodelist, local, history)
            # As ExtendsNode finds its parent: the same name skips the templates already seen.
            parent, origin = self.engine.find_template(
                self.constant_name(node.parent_name), skip=history
            )
            self.nodes(parent.nodelist, local, [*history, origin])
        elif isinstance(node, lt.IncludeNode):
            for fe in node.extra_context.values():
                self.expression(fe, local)
            included = self.engine.get_template(self.constant_name(node.template))
            inner = frozenset(node.extra_context) if node.isolated_context else local
            self.nodes(included.nodelist, inner | set(node.extra_context), [included.origin])
        elif isinstance(node, StaticNode) and node.varname is None:
            self.expression(node.path, local)
        else:
            raise _Impure(type(node).__name__)


def is_pure(
    template: Template,
    names: Collection[str],
    keyed_lookups: dict[str, frozenset[str]] | None = None,
) -> bool:
    """Whether rendering ``template`` reads only the context ``names`` (and the session token,
    printed as is), through pure filters and tags only.

    ``keyed_lookups`` limits a name to some of its attributes (``{"tenant": {"base_url"}}``):
    the ones the cache key holds.
    """
    walk = _Walk(template.engine, names, keyed_lookups or {})
    try:
        walk.nodes(template.nodelist, frozenset(), [template.origin])
    except (_Impure, TemplateDoesNotExist):
        return False
    return True


_pure_by_name: dict[tuple[Any, ...], bool] = {}
_pages = LRU(CACHE_SIZE)


def clear_cache(**_: Any) -> None:
    _pure_by_name.clear()
    _pages.clear()


setting_changed.connect(clear_cache, dispatch_uid="connect_settings.page_cache")


def _pure_by(
    template_name: str, names: frozenset[str], keyed_lookups: dict[str, frozenset[str]]
) -> bool:
    key = (template_name, names, tuple(sorted(keyed_lookups.items())))
    found = _pure_by_name.get(key)
    if found is None:
        backend = engines["django"]
        template = backend.get_template(template_name).template  # type: ignore[attr-defined]
        found = _pure_by_name[key] = is_pure(template, names, keyed_lookups)
    return found


def render_page(
    request: HttpRequest,
    template_name: str,
    context: dict[str, Any],
    *,
    key: Hashable | None,
    token: Callable[[], str],
    keyed_lookups: dict[str, frozenset[str]] | None = None,
) -> HttpResponse:
    """``render(request, template_name, context)``, from the cache when the template is pure.

    ``key`` must cover every value in ``context`` that the template may read (lazy values
    computed from keyed ones need not be in it); None renders without the cache.
    ``token()`` is this load's session token.
    """
    names = frozenset(context) | {TOKEN_NAME}
    if key is None or settings.DEBUG or not _pure_by(template_name, names, keyed_lookups or {}):
        return HttpResponse(render_to_string(template_name, context, request))
    cache_key = (template_name, key)
    try:
        parts = _pages.get(cache_key)
    except TypeError:  # an unhashable value in the key (a driver's column type): no cache
        return HttpResponse(render_to_string(template_name, context, request))
    charset = settings.DEFAULT_CHARSET  # what HttpResponse encodes a str with
    if parts is None:
        html = render_to_string(template_name, {**context, TOKEN_NAME: _PLACEHOLDER}, request)
        # Kept encoded, around the placeholder: a load joins bytes instead of replacing in
        # and encoding the whole page (a 23 KB page with history: 54 µs against 2 µs).
        parts = tuple(part.encode(charset) for part in html.split(_PLACEHOLDER))
        _pages.put(cache_key, parts)
    return HttpResponse(token().encode(charset).join(parts))
