"""Glance's metadata definitions catalog (``/v2/metadefs``): namespaces and, in each,
objects, properties, tags and resource type associations.

Who may do what is Glance's default: anyone reads, admins write. A ``public``
namespace is seen by every project, a ``private`` one only by its owner (and
admins); one that is not seen is a 404. A ``protected`` namespace, and everything
in it, cannot be deleted (403) until it is updated to ``protected: false``.
Deleting a namespace deletes what it holds. Names are unique within their
namespace (409 otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import MetadefEntry, MetadefNamespace, MetadefResourceType, utcnow
from novalite.exceptions import BadRequest, Conflict, Forbidden, NotFound
from novalite.image.fields import isotime

#: The resource types Glance's database starts with.
SEEDED_RESOURCE_TYPES = ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor",
                         "OS::Nova::Aggregate", "OS::Nova::Server")
KINDS = ("object", "property", "tag", "resource_type")
_NAMESPACE_FIELDS = {"namespace", "display_name", "description", "visibility", "protected",
                     "owner", "resource_type_associations", "properties", "objects", "tags",
                     "schema", "self", "created_at", "updated_at"}
_PROPERTY_FIELDS = {"name", "title", "description", "operators", "type", "readonly",
                    "default", "enum", "minimum", "maximum", "minLength", "maxLength",
                    "pattern", "items", "maxItems", "minItems", "uniqueItems",
                    "additionalItems", "required"}
_PROPERTY_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_OBJECT_FIELDS = {"name", "description", "required", "properties", "schema", "self",
                  "created_at", "updated_at"}
_ASSOCIATION_FIELDS = {"name", "prefix", "properties_target", "created_at", "updated_at"}
_T = TypeVar("_T")


def _bad(message: str) -> BadRequest:
    return BadRequest(message)


def _string(body: Mapping[str, Any], key: str, limit: int, *, required: bool = False
            ) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _bad(f"'{key}' is a required property")
        return None
    if not isinstance(value, str):
        raise _bad(f"Invalid value for {key}: {value!r} is not of type 'string'")
    if len(value) > limit:
        raise _bad(f"Invalid value for {key}: {value!r} is too long (at most {limit})")
    if required and not value.strip():
        raise _bad(f"Invalid value for {key}: it may not be empty")
    return value


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object")
    return body


def _only(body: Mapping[str, Any], fields: set[str]) -> None:
    extra = sorted(set(body) - fields)
    if extra:
        raise _bad(f"Additional properties are not allowed ('{extra[0]}' was unexpected)")


def check_property(body: Any, *, name_required: bool = True) -> dict[str, Any]:
    """A property definition as Glance's ``metadefs/property`` schema has it."""
    body = _object_body(body)
    _only(body, _PROPERTY_FIELDS)
    _string(body, "name", 255, required=name_required)
    _string(body, "title", 255, required=True)
    if body.get("type") not in _PROPERTY_TYPES:
        raise _bad(f"Invalid value for type: {body.get('type')!r} is not one of "
                   f"{list(_PROPERTY_TYPES)}")
    for key in ("enum", "operators", "required"):
        if key in body and not isinstance(body[key], list):
            raise _bad(f"Invalid value for {key}: {body[key]!r} is not of type 'array'")
    for key in ("readonly", "uniqueItems", "additionalItems"):
        if key in body and not isinstance(body[key], bool):
            raise _bad(f"Invalid value for {key}: {body[key]!r} is not of type 'boolean'")
    for key in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        value = body.get(key)
        if key in body and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _bad(f"Invalid value for {key}: {value!r} is not of type 'number'")
    return dict(body)


def _check_object(body: Any) -> dict[str, Any]:
    body = _object_body(body)
    _only(body, _OBJECT_FIELDS)
    _string(body, "name", 255, required=True)
    _string(body, "description", 10000)
    required = body.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _bad("Invalid value for required: expected an array of strings")
    props = body.get("properties", {})
    if not isinstance(props, dict):
        raise _bad("Invalid value for properties: expected an object")
    return {"name": body["name"], "description": body.get("description"),
            "required": required,
            "properties": {k: check_property(v, name_required=False)
                           for k, v in props.items()}}


class MetadefCatalog:
    """Namespaces and their entries, on the shared database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- visibility and the namespace a call names ----------------------------------
    @staticmethod
    def _sees(ns: MetadefNamespace, ctx: AuthContext) -> bool:
        return ns.visibility == "public" or ctx.is_admin or ns.owner == ctx.project_id

    def _namespace(self, s: Session, ctx: AuthContext, name: str) -> MetadefNamespace:
        ns = s.get(MetadefNamespace, name)
        if ns is None or not self._sees(ns, ctx):
            raise NotFound(f"Metadata definition namespace={name} was not found.")
        return ns

    def _entry(self, s: Session, ns: str, kind: str, name: str) -> MetadefEntry:
        row = s.get(MetadefEntry, (ns, kind, name))
        if row is None:
            what = {"resource_type": "resource type association"}.get(kind, kind)
            raise NotFound(f"Metadata definition {what}={name} was not found in "
                           f"namespace={ns}.")
        return row

    async def _read(self, work: Callable[[Session], _T]) -> _T:
        return await self.db.read(work)

    async def _write(self, work: Callable[[Session], _T]) -> _T:
        return await self.db.write(work)

    # -- namespaces ------------------------------------------------------------------
    def _namespace_fields(self, ctx: AuthContext, body: Any) -> dict[str, Any]:
        body = _object_body(body)
        _only(body, _NAMESPACE_FIELDS)
        out: dict[str, Any] = {
            "namespace": _string(body, "namespace", 80, required=True),
            "display_name": _string(body, "display_name", 80),
            "description": _string(body, "description", 500)}
        visibility = body.get("visibility", "private")
        if visibility not in ("public", "private"):
            raise _bad(f"Invalid value for visibility: {visibility!r} is not one of "
                       "['public', 'private']")
        out["visibility"] = visibility
        protected = body.get("protected", False)
        if not isinstance(protected, bool):
            raise _bad(f"Invalid value for protected: {protected!r} is not of type "
                       "'boolean'")
        out["protected"] = protected
        owner = _string(body, "owner", 255)
        if owner is not None and owner != ctx.project_id and not ctx.is_admin:
            raise Forbidden("You are not permitted to create a namespace owned by "
                            f"'{owner}'")
        out["owner"] = owner  # None: the caller's project (create), unchanged (update)
        return out

    async def create_namespace(self, ctx: AuthContext, body: Any) -> MetadefNamespace:
        fields = self._namespace_fields(ctx, body)
        associations = [self._association(a) for a in body.get("resource_type_associations")
                        or []]
        objects = [_check_object(o) for o in body.get("objects") or []]
        properties = {k: check_property(v, name_required=False)
                      for k, v in (body.get("properties") or {}).items()}
        tags = [self._tag_name(t) for t in body.get("tags") or []]

        def work(s: Session) -> MetadefNamespace:
            if s.get(MetadefNamespace, fields["namespace"]) is not None:
                raise Conflict(f"Metadata definition namespace={fields['namespace']} "
                               "already exists.")
            ns = MetadefNamespace(**{**fields, "owner": fields["owner"] or ctx.project_id})
            s.add(ns)
            for assoc in associations:
                self._ensure_resource_type(s, assoc["name"])
                s.add(MetadefEntry(namespace=ns.namespace, kind="resource_type",
                                   name=assoc["name"], body=assoc))
            for kind, items in (("object", [(o["name"], o) for o in objects]),
                                ("property", list(properties.items())),
                                ("tag", [(t, {"name": t}) for t in tags])):
                seen: set[str] = set()
                for name, item in items:
                    if name in seen:
                        raise Conflict(f"Duplicate {kind} {name} in namespace "
                                       f"{ns.namespace}")
                    seen.add(name)
                    s.add(MetadefEntry(namespace=ns.namespace, kind=kind, name=name,
                                       body={**item, "name": name}))
            s.flush()
            return ns

        return await self._write(work)

    async def list_namespaces(self, ctx: AuthContext, query: Mapping[str, str]
                              ) -> list[MetadefNamespace]:
        visibility = query.get("visibility")
        if visibility is not None and visibility not in ("public", "private"):
            raise _bad(f"Invalid visibility value: {visibility}")
        wanted_types = [t for t in (query.get("resource_types") or "").split(",") if t]
        sort_key = query.get("sort_key", "created_at")
        if sort_key not in ("created_at", "updated_at", "namespace", "display_name"):
            raise _bad(f"Invalid sort key: {sort_key}")
        sort_dir = query.get("sort_dir", "desc")
        if sort_dir not in ("asc", "desc"):
            raise _bad(f"Invalid sort direction: {sort_dir}")
        limit = None
        if query.get("limit") is not None:
            try:
                limit = int(query["limit"])
                assert limit >= 0
            except (ValueError, AssertionError):
                raise _bad("limit param must be an integer >= 0") from None
        marker = query.get("marker")

        def work(s: Session) -> list[MetadefNamespace]:
            column = col(getattr(MetadefNamespace, sort_key))
            q = select(MetadefNamespace).order_by(
                column.desc() if sort_dir == "desc" else column.asc(),
                col(MetadefNamespace.namespace))
            rows = [ns for ns in s.exec(q).all() if self._sees(ns, ctx)]
            if visibility:
                rows = [ns for ns in rows if ns.visibility == visibility]
            if wanted_types:
                having = {e.namespace for e in s.exec(select(MetadefEntry).where(
                    MetadefEntry.kind == "resource_type",
                    col(MetadefEntry.name).in_(wanted_types))).all()}
                rows = [ns for ns in rows if ns.namespace in having]
            if marker is not None:
                names = [ns.namespace for ns in rows]
                if marker not in names:
                    raise _bad(f"Invalid marker. Namespace {marker} could not be found.")
                rows = rows[names.index(marker) + 1:]
            return rows[:limit] if limit is not None else rows

        return await self._read(work)

    async def get_namespace(self, ctx: AuthContext, name: str
                            ) -> tuple[MetadefNamespace, list[MetadefEntry]]:
        def work(s: Session) -> tuple[MetadefNamespace, list[MetadefEntry]]:
            ns = self._namespace(s, ctx, name)
            entries = list(s.exec(select(MetadefEntry).where(
                MetadefEntry.namespace == name).order_by(col(MetadefEntry.name))).all())
            return ns, entries

        return await self._read(work)

    async def update_namespace(self, ctx: AuthContext, name: str, body: Any
                               ) -> MetadefNamespace:
        fields = self._namespace_fields(ctx, body)

        def work(s: Session) -> MetadefNamespace:
            ns = self._namespace(s, ctx, name)
            fields["owner"] = fields["owner"] or ns.owner
            new_name = fields["namespace"]
            if new_name != name:
                if s.get(MetadefNamespace, new_name) is not None:
                    raise Conflict(f"Metadata definition namespace={new_name} already "
                                   "exists.")
                for e in s.exec(select(MetadefEntry).where(
                        MetadefEntry.namespace == name)).all():
                    s.add(MetadefEntry(namespace=new_name, kind=e.kind, name=e.name,
                                       body=e.body, created_at=e.created_at,
                                       updated_at=e.updated_at))
                    s.delete(e)
                renamed = MetadefNamespace(**{**fields, "created_at": ns.created_at})
                s.delete(ns)
                s.flush()
                s.add(renamed)
                s.flush()
                return renamed
            for key, value in fields.items():
                setattr(ns, key, value)
            ns.updated_at = utcnow()
            s.add(ns)
            s.flush()
            return ns

        return await self._write(work)

    async def delete_namespace(self, ctx: AuthContext, name: str) -> None:
        def work(s: Session) -> None:
            ns = self._namespace(s, ctx, name)
            if ns.protected:
                raise Forbidden(f"Namespace {name} is protected and cannot be deleted.")
            for e in s.exec(select(MetadefEntry).where(MetadefEntry.namespace == name)):
                s.delete(e)
            s.delete(ns)

        await self._write(work)

    # -- entries (objects, properties, tags, resource type associations) -------------
    async def list_entries(self, ctx: AuthContext, ns_name: str, kind: str
                           ) -> list[MetadefEntry]:
        def work(s: Session) -> list[MetadefEntry]:
            self._namespace(s, ctx, ns_name)
            return list(s.exec(select(MetadefEntry).where(
                MetadefEntry.namespace == ns_name, MetadefEntry.kind == kind)
                .order_by(col(MetadefEntry.created_at), col(MetadefEntry.name))).all())

        return await self._read(work)

    async def get_entry(self, ctx: AuthContext, ns_name: str, kind: str, name: str
                        ) -> MetadefEntry:
        def work(s: Session) -> MetadefEntry:
            self._namespace(s, ctx, ns_name)
            return self._entry(s, ns_name, kind, name)

        return await self._read(work)

    async def add_entries(self, ctx: AuthContext, ns_name: str, kind: str,
                          items: list[dict[str, Any]], *, replace: bool = False
                          ) -> list[MetadefEntry]:
        """Add ``items`` (each with its ``name``); ``replace``: they replace every entry
        of that kind (Glance's ``POST .../tags``)."""
        names = [str(i["name"]) for i in items]
        if len(set(names)) != len(names):
            raise Conflict(f"Duplicate {kind} names in the request")

        def work(s: Session) -> list[MetadefEntry]:
            ns = self._namespace(s, ctx, ns_name)
            if replace:
                for e in s.exec(select(MetadefEntry).where(
                        MetadefEntry.namespace == ns_name, MetadefEntry.kind == kind)):
                    s.delete(e)
                s.flush()
            out = []
            for item in items:
                if s.get(MetadefEntry, (ns_name, kind, item["name"])) is not None:
                    raise Conflict(f"A metadata definition {kind} with name={item['name']}"
                                   f" already exists in namespace={ns_name}.")
                if kind == "resource_type":
                    self._ensure_resource_type(s, item["name"])
                row = MetadefEntry(namespace=ns_name, kind=kind, name=item["name"],
                                   body=item)
                s.add(row)
                out.append(row)
            ns.updated_at = utcnow()
            s.add(ns)
            s.flush()
            return out

        return await self._write(work)

    async def update_entry(self, ctx: AuthContext, ns_name: str, kind: str, name: str,
                           item: dict[str, Any]) -> MetadefEntry:
        def work(s: Session) -> MetadefEntry:
            self._namespace(s, ctx, ns_name)
            row = self._entry(s, ns_name, kind, name)
            new_name = str(item["name"])
            if new_name != name:
                if s.get(MetadefEntry, (ns_name, kind, new_name)) is not None:
                    raise Conflict(f"A metadata definition {kind} with name={new_name} "
                                   f"already exists in namespace={ns_name}.")
                renamed = MetadefEntry(namespace=ns_name, kind=kind, name=new_name,
                                       body=item, created_at=row.created_at)
                s.delete(row)
                s.flush()
                s.add(renamed)
                s.flush()
                return renamed
            row.body = item
            row.updated_at = utcnow()
            s.add(row)
            s.flush()
            return row

        return await self._write(work)

    async def delete_entries(self, ctx: AuthContext, ns_name: str, kind: str,
                             name: str | None = None) -> None:
        """Delete one entry (``name``), or every entry of ``kind``."""
        def work(s: Session) -> None:
            ns = self._namespace(s, ctx, ns_name)
            if ns.protected:
                what = {"resource_type": "resource type association"}.get(kind, kind)
                raise Forbidden(f"Cannot delete the metadata definition {what} "
                                f"{name or ''} of namespace {ns_name}: the namespace is "
                                "protected.".replace("  ", " "))
            if name is not None:
                s.delete(self._entry(s, ns_name, kind, name))
                return
            for e in s.exec(select(MetadefEntry).where(
                    MetadefEntry.namespace == ns_name, MetadefEntry.kind == kind)):
                s.delete(e)

        await self._write(work)

    # -- resource types --------------------------------------------------------------
    @staticmethod
    def _ensure_resource_type(s: Session, name: str) -> None:
        if s.get(MetadefResourceType, name) is None:
            s.add(MetadefResourceType(name=name))
            s.flush()

    async def resource_types(self) -> list[MetadefResourceType]:
        def seed(s: Session) -> None:
            for name in SEEDED_RESOURCE_TYPES:
                if s.get(MetadefResourceType, name) is None:
                    s.add(MetadefResourceType(name=name, protected=True))

        have = await self._read(lambda s: {r.name for r in s.exec(
            select(MetadefResourceType)).all()})
        if not set(SEEDED_RESOURCE_TYPES) <= have:
            await self._write(seed)
        return await self._read(lambda s: list(s.exec(select(MetadefResourceType).order_by(
            col(MetadefResourceType.created_at), col(MetadefResourceType.name))).all()))

    @staticmethod
    def _association(body: Any) -> dict[str, Any]:
        body = _object_body(body)
        _only(body, _ASSOCIATION_FIELDS)
        out = {"name": _string(body, "name", 80, required=True)}
        for key in ("prefix", "properties_target"):
            value = _string(body, key, 80)
            if value is not None:
                out[key] = value
        return out

    @staticmethod
    def _tag_name(body: Any) -> str:
        body = _object_body(body)
        _only(body, {"name", "created_at", "updated_at"})
        return str(_string(body, "name", 255, required=True))

    # the checks the routes use
    check_object = staticmethod(_check_object)
    association = _association
    tag_name = _tag_name


def times(row: MetadefNamespace | MetadefEntry | MetadefResourceType) -> dict[str, str]:
    return {"created_at": isotime(row.created_at), "updated_at": isotime(row.updated_at)}
