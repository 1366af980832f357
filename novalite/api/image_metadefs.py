"""Glance's metadata definitions catalog, ``/image/v2/metadefs/...``: namespaces and
their objects, properties, tags and resource type associations, in Glance's shapes
(:mod:`novalite.image.metadefs` holds the rules)."""

from __future__ import annotations

from typing import Any

from novalite.api.framework import ApiCall, Reply, Router
from novalite.db.models import MetadefEntry, MetadefNamespace
from novalite.exceptions import BadRequest, NotFound
from novalite.image.metadefs import MetadefCatalog, check_property, times

router = Router()
NAMESPACES = "/v2/metadefs/namespaces"
NAMESPACE = NAMESPACES + "/{namespace}"


def _catalog(call: ApiCall) -> MetadefCatalog:
    return MetadefCatalog(call.services.images.db)


def _self(ns: str, *rest: str) -> str:
    return "/".join([f"{NAMESPACES}/{ns}", *rest])


def namespace_view(ns: MetadefNamespace, entries: list[MetadefEntry] | None = None
                   ) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": ns.namespace}
    for key in ("display_name", "description"):
        if getattr(ns, key) is not None:
            out[key] = getattr(ns, key)
    out.update(visibility=ns.visibility, protected=ns.protected, owner=ns.owner, **times(ns),
               schema="/v2/schemas/metadefs/namespace", self=_self(ns.namespace))
    if entries:
        kinds: dict[str, list[MetadefEntry]] = {}
        for e in entries:
            kinds.setdefault(e.kind, []).append(e)
        if "resource_type" in kinds:
            out["resource_type_associations"] = [association_view(e)
                                                 for e in kinds["resource_type"]]
        if "property" in kinds:
            out["properties"] = {e.name: _without_name(e.body) for e in kinds["property"]}
        if "object" in kinds:
            out["objects"] = [object_view(e) for e in kinds["object"]]
        if "tag" in kinds:
            out["tags"] = [{"name": e.name} for e in kinds["tag"]]
    return out


def _without_name(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "name"}


def object_view(e: MetadefEntry) -> dict[str, Any]:
    body = {k: v for k, v in e.body.items() if v is not None}
    return {**body, "name": e.name, **times(e), "schema": "/v2/schemas/metadefs/object",
            "self": _self(e.namespace, "objects", e.name)}


def association_view(e: MetadefEntry) -> dict[str, Any]:
    return {**e.body, "name": e.name, **times(e)}


def tag_view(e: MetadefEntry) -> dict[str, Any]:
    return {"name": e.name, **times(e)}


def property_view(e: MetadefEntry) -> dict[str, Any]:
    return {**e.body, "name": e.name}


# -- namespaces ------------------------------------------------------------------------
@router.route("GET", NAMESPACES, rule="image:get_metadef_namespaces")
async def list_namespaces(call: ApiCall) -> dict[str, Any]:
    found = await _catalog(call).list_namespaces(call.ctx, call.query)
    return {"namespaces": [namespace_view(ns) for ns in found], "first": NAMESPACES,
            "schema": "/v2/schemas/metadefs/namespaces"}


@router.route("POST", NAMESPACES, rule="image:add_metadef_namespace")
async def create_namespace(call: ApiCall) -> Reply:
    catalog = _catalog(call)
    ns = await catalog.create_namespace(call.ctx, call.body)
    _, entries = await catalog.get_namespace(call.ctx, ns.namespace)
    return Reply(201, namespace_view(ns, entries))


@router.route("GET", NAMESPACE, rule="image:get_metadef_namespace")
async def show_namespace(call: ApiCall) -> dict[str, Any]:
    ns, entries = await _catalog(call).get_namespace(call.ctx, call.params["namespace"])
    return namespace_view(ns, entries)


@router.route("PUT", NAMESPACE, rule="image:modify_metadef_namespace")
async def update_namespace(call: ApiCall) -> dict[str, Any]:
    ns = await _catalog(call).update_namespace(call.ctx, call.params["namespace"], call.body)
    return namespace_view(ns)


@router.route("DELETE", NAMESPACE, rule="image:delete_metadef_namespace")
async def delete_namespace(call: ApiCall) -> Reply:
    await _catalog(call).delete_namespace(call.ctx, call.params["namespace"])
    return Reply(204)


# -- objects ---------------------------------------------------------------------------
@router.route("GET", NAMESPACE + "/objects", rule="image:get_metadef_objects")
async def list_objects(call: ApiCall) -> dict[str, Any]:
    found = await _catalog(call).list_entries(call.ctx, call.params["namespace"], "object")
    return {"objects": [object_view(e) for e in found],
            "schema": "/v2/schemas/metadefs/objects"}


@router.route("POST", NAMESPACE + "/objects", rule="image:add_metadef_object")
async def create_object(call: ApiCall) -> Reply:
    item = MetadefCatalog.check_object(call.body)
    rows = await _catalog(call).add_entries(call.ctx, call.params["namespace"], "object",
                                            [item])
    return Reply(201, object_view(rows[0]))


@router.route("GET", NAMESPACE + "/objects/{name}", rule="image:get_metadef_object")
async def show_object(call: ApiCall) -> dict[str, Any]:
    p = call.params
    return object_view(await _catalog(call).get_entry(call.ctx, p["namespace"], "object",
                                                      p["name"]))


@router.route("PUT", NAMESPACE + "/objects/{name}", rule="image:modify_metadef_object")
async def update_object(call: ApiCall) -> dict[str, Any]:
    p = call.params
    item = MetadefCatalog.check_object(call.body)
    return object_view(await _catalog(call).update_entry(call.ctx, p["namespace"], "object",
                                                         p["name"], item))


@router.route("DELETE", NAMESPACE + "/objects/{name}", rule="image:delete_metadef_object")
async def delete_object(call: ApiCall) -> Reply:
    p = call.params
    await _catalog(call).delete_entries(call.ctx, p["namespace"], "object", p["name"])
    return Reply(204)


@router.route("DELETE", NAMESPACE + "/objects", rule="image:delete_metadef_object")
async def delete_objects(call: ApiCall) -> Reply:
    await _catalog(call).delete_entries(call.ctx, call.params["namespace"], "object")
    return Reply(204)


# -- properties ------------------------------------------------------------------------
@router.route("GET", NAMESPACE + "/properties", rule="image:get_metadef_properties")
async def list_properties(call: ApiCall) -> dict[str, Any]:
    found = await _catalog(call).list_entries(call.ctx, call.params["namespace"], "property")
    return {"properties": {e.name: _without_name(e.body) for e in found},
            "schema": "/v2/schemas/metadefs/properties"}


@router.route("POST", NAMESPACE + "/properties", rule="image:add_metadef_property")
async def create_property(call: ApiCall) -> Reply:
    item = check_property(call.body)
    rows = await _catalog(call).add_entries(call.ctx, call.params["namespace"], "property",
                                            [item])
    return Reply(201, property_view(rows[0]))


@router.route("GET", NAMESPACE + "/properties/{name}", rule="image:get_metadef_property")
async def show_property(call: ApiCall) -> dict[str, Any]:
    """``resource_type``: the name is given with that association's prefix (Glance)."""
    p = call.params
    catalog = _catalog(call)
    name = p["name"]
    resource_type = call.query.get("resource_type")
    if resource_type:
        assoc = await catalog.get_entry(call.ctx, p["namespace"], "resource_type",
                                        resource_type)
        prefix = str(assoc.body.get("prefix") or "")
        if prefix and not name.startswith(prefix):
            raise NotFound(f"Property {name} does not start with the expected resource "
                           f"type association prefix of '{prefix}'.")
        name = name[len(prefix):]
    return property_view(await catalog.get_entry(call.ctx, p["namespace"], "property", name))


@router.route("PUT", NAMESPACE + "/properties/{name}", rule="image:modify_metadef_property")
async def update_property(call: ApiCall) -> dict[str, Any]:
    p = call.params
    item = check_property(call.body)
    return property_view(await _catalog(call).update_entry(
        call.ctx, p["namespace"], "property", p["name"], item))


@router.route("DELETE", NAMESPACE + "/properties/{name}",
              rule="image:remove_metadef_property")
async def delete_property(call: ApiCall) -> Reply:
    p = call.params
    await _catalog(call).delete_entries(call.ctx, p["namespace"], "property", p["name"])
    return Reply(204)


@router.route("DELETE", NAMESPACE + "/properties", rule="image:remove_metadef_property")
async def delete_properties(call: ApiCall) -> Reply:
    await _catalog(call).delete_entries(call.ctx, call.params["namespace"], "property")
    return Reply(204)


# -- tags ------------------------------------------------------------------------------
@router.route("GET", NAMESPACE + "/tags", rule="image:get_metadef_tags")
async def list_tags(call: ApiCall) -> dict[str, Any]:
    found = await _catalog(call).list_entries(call.ctx, call.params["namespace"], "tag")
    return {"tags": [tag_view(e) for e in found]}


@router.route("POST", NAMESPACE + "/tags", rule="image:add_metadef_tags")
async def create_tags(call: ApiCall) -> Reply:
    """The given tags replace the namespace's (with ``X-Openstack-Append: True``, Glance
    2.10, they are added to them)."""
    body = call.body
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise BadRequest("The request body must be an object with a 'tags' array")
    names = [MetadefCatalog.tag_name(t) for t in body["tags"]]
    append = call.request.headers.get("x-openstack-append", "").lower() == "true"
    rows = await _catalog(call).add_entries(call.ctx, call.params["namespace"], "tag",
                                            [{"name": n} for n in names], replace=not append)
    return Reply(201, {"tags": [tag_view(e) for e in rows]})


@router.route("DELETE", NAMESPACE + "/tags", rule="image:delete_metadef_tags")
async def delete_tags(call: ApiCall) -> Reply:
    await _catalog(call).delete_entries(call.ctx, call.params["namespace"], "tag")
    return Reply(204)


@router.route("POST", NAMESPACE + "/tags/{tag}", rule="image:add_metadef_tag")
async def create_tag(call: ApiCall) -> Reply:
    p = call.params
    name = MetadefCatalog.tag_name({"name": p["tag"]})
    rows = await _catalog(call).add_entries(call.ctx, p["namespace"], "tag",
                                            [{"name": name}])
    return Reply(201, tag_view(rows[0]))


@router.route("GET", NAMESPACE + "/tags/{tag}", rule="image:get_metadef_tag")
async def show_tag(call: ApiCall) -> dict[str, Any]:
    p = call.params
    return tag_view(await _catalog(call).get_entry(call.ctx, p["namespace"], "tag", p["tag"]))


@router.route("PUT", NAMESPACE + "/tags/{tag}", rule="image:modify_metadef_tag")
async def update_tag(call: ApiCall) -> dict[str, Any]:
    p = call.params
    name = MetadefCatalog.tag_name(call.body)
    return tag_view(await _catalog(call).update_entry(call.ctx, p["namespace"], "tag",
                                                      p["tag"], {"name": name}))


@router.route("DELETE", NAMESPACE + "/tags/{tag}", rule="image:delete_metadef_tag")
async def delete_tag(call: ApiCall) -> Reply:
    p = call.params
    await _catalog(call).delete_entries(call.ctx, p["namespace"], "tag", p["tag"])
    return Reply(204)


# -- resource types --------------------------------------------------------------------
@router.route("GET", "/v2/metadefs/resource_types", rule="image:list_metadef_resource_types")
async def list_resource_types(call: ApiCall) -> dict[str, Any]:
    found = await _catalog(call).resource_types()
    return {"resource_types": [{"name": r.name, **times(r)} for r in found]}


@router.route("GET", NAMESPACE + "/resource_types", rule="image:get_metadef_resource_type")
async def list_associations(call: ApiCall) -> dict[str, Any]:
    found = await _catalog(call).list_entries(call.ctx, call.params["namespace"],
                                              "resource_type")
    return {"resource_type_associations": [association_view(e) for e in found]}


@router.route("POST", NAMESPACE + "/resource_types",
              rule="image:add_metadef_resource_type_association")
async def create_association(call: ApiCall) -> Reply:
    item = MetadefCatalog.association(call.body)
    rows = await _catalog(call).add_entries(call.ctx, call.params["namespace"],
                                            "resource_type", [item])
    return Reply(201, association_view(rows[0]))


@router.route("DELETE", NAMESPACE + "/resource_types/{name}",
              rule="image:remove_metadef_resource_type_association")
async def delete_association(call: ApiCall) -> Reply:
    p = call.params
    await _catalog(call).delete_entries(call.ctx, p["namespace"], "resource_type",
                                        p["name"])
    return Reply(204)
