"""The admin of the races' rows, each model registered in one call: its list shows the id and the
columns named, with the rows they point to fetched in the same query; a RaceRecord's list adds
which strategy wrote each row and when its request began, and filters by strategy."""

from django.contrib import admin
from django.db import models

from races.models import RaceRecord


def register_admin(
    model: type[models.Model], *columns: str, search: tuple[str, ...] = (), filters: tuple[str, ...] = ()
) -> None:
    """Register ``model`` with the admin, listing ``columns``, searchable by ``search`` and
    filtered by ``filters``."""
    options: dict[str, list[str]] = {"list_display": ["id", *columns]}
    if issubclass(model, RaceRecord):
        options["list_display"] += ["strategy", "request_started_at"]
        filters = ("strategy", *filters)
    if filters:
        options["list_filter"] = list(filters)
    related = [name for name in columns if model._meta.get_field(name).is_relation]
    if related:
        options["list_select_related"] = related
    if search:
        options["search_fields"] = list(search)
    admin.site.register(model, **options)
