"""Who may do what: one table, Nova's and Keystone's default rules.

Roles imply each other as Keystone's defaults do: ``admin`` implies ``manager``,
``manager`` implies ``member``, ``member`` implies ``reader``. A rule names the least role that passes it and
whether the target must be in the caller's project:

* ``admin_api`` - admins only (service and hypervisor administration, flavor
  management, identity administration, other projects' quotas, ``all_tenants``);
* ``project_manager`` - Nova's project manager persona (and admins): migrating their
  project's servers and listing their project's migrations, without host details;
* ``project_member`` - members (and admins) acting on their project's resources;
* ``project_reader`` - readers (and up) reading their project's resources.

Whether a resource is "in the caller's project" is decided where the resource is
loaded (another project's server is a 404, never a 403: Nova does not reveal it
exists); this table decides only whether the caller's role passes. ``novalite
policy`` prints it.
"""

from __future__ import annotations

from novalite.exceptions import Forbidden

#: Roles in the order each implies the next.
ROLE_ORDER = ("admin", "manager", "member", "reader")

#: The least role each kind of rule needs.
KINDS = {"admin_api": "admin", "project_manager": "manager", "project_member": "member",
         "project_reader": "reader"}

#: rule -> kind. Names are Nova's (``os_compute_api:...``) and Keystone's (``identity:...``).
RULES: dict[str, str] = {
    # servers
    "os_compute_api:servers:index": "project_reader",
    "os_compute_api:servers:detail": "project_reader",
    "os_compute_api:servers:show": "project_reader",
    "os_compute_api:servers:index:get_all_tenants": "admin_api",
    "os_compute_api:servers:create": "project_member",
    "os_compute_api:servers:update": "project_member",
    "os_compute_api:servers:delete": "project_member",
    "os_compute_api:servers:detail:get_all_tenants": "admin_api",
    "os_compute_api:servers:allow_all_filters": "admin_api",
    "os_compute_api:servers:create:forced_host": "admin_api",
    "compute:servers:create:requested_destination": "admin_api",
    "os_compute_api:os-server-metadata:index": "project_reader",
    "os_compute_api:os-server-metadata:show": "project_reader",
    "os_compute_api:os-server-metadata:create": "project_member",
    "os_compute_api:os-server-metadata:update": "project_member",
    "os_compute_api:os-server-metadata:update_all": "project_member",
    "os_compute_api:os-server-metadata:delete": "project_member",
    "os_compute_api:os-server-tags:index": "project_reader",
    "os_compute_api:os-server-tags:show": "project_reader",
    "os_compute_api:os-server-tags:update": "project_member",
    "os_compute_api:os-server-tags:update_all": "project_member",
    "os_compute_api:os-server-tags:delete": "project_member",
    "os_compute_api:os-server-tags:delete_all": "project_member",
    "os_compute_api:ips:index": "project_reader",
    "os_compute_api:ips:show": "project_reader",
    "os_compute_api:os-admin-actions:reset_state": "admin_api",
    "os_compute_api:os-server-diagnostics": "admin_api",
    # moves: resize (the owner); cold and live migration and the migration records
    # (project managers, Nova's 2025 defaults; choosing the host and seeing hosts or
    # other projects' migrations: admins)
    "os_compute_api:servers:resize": "project_member",
    "os_compute_api:servers:confirm_resize": "project_member",
    "os_compute_api:servers:revert_resize": "project_member",
    "os_compute_api:os-migrate-server:migrate": "project_manager",
    "os_compute_api:os-migrate-server:migrate:host": "admin_api",
    "os_compute_api:os-migrate-server:migrate_live": "project_manager",
    "os_compute_api:os-migrate-server:migrate_live:host": "admin_api",
    "os_compute_api:os-migrations:index": "project_manager",
    "os_compute_api:os-migrations:index:all_projects": "admin_api",
    "os_compute_api:os-migrations:index:host": "admin_api",
    "os_compute_api:os-evacuate": "admin_api",
    "os_compute_api:servers:migrations:index": "admin_api",
    "os_compute_api:servers:migrations:show": "admin_api",
    "os_compute_api:servers:migrations:force_complete": "admin_api",
    "os_compute_api:servers:migrations:delete": "admin_api",
    "os_compute_api:os-shelve:shelve": "project_member",
    "os_compute_api:os-shelve:shelve_offload": "admin_api",
    "os_compute_api:os-shelve:unshelve": "project_member",
    "os_compute_api:os-shelve:unshelve_to_host": "admin_api",
    # server actions (POST /servers/{id}/action), each its own rule as in Nova
    "os_compute_api:servers:reboot": "project_member",
    "os_compute_api:servers:start": "project_member",
    "os_compute_api:servers:stop": "project_member",
    "os_compute_api:servers:create_image": "project_member",
    "os_compute_api:os-pause-server:pause": "project_member",
    "os_compute_api:os-pause-server:unpause": "project_member",
    "os_compute_api:os-suspend-server:suspend": "project_member",
    "os_compute_api:os-suspend-server:resume": "project_member",
    "os_compute_api:os-lock-server:lock": "project_member",
    "os_compute_api:os-lock-server:unlock": "project_member",
    "os_compute_api:os-console-output": "project_member",
    "os_compute_api:os-remote-consoles": "project_member",
    "os_compute_api:servers:rebuild": "project_member",
    "os_compute_api:os-rescue": "project_member",
    "os_compute_api:os-unrescue": "project_member",
    "os_compute_api:os-create-backup": "project_member",
    "os_compute_api:os-deferred-delete:restore": "project_member",
    "os_compute_api:os-deferred-delete:force": "project_member",
    "os_compute_api:servers:trigger_crash_dump": "project_member",
    "os_compute_api:os-console-auth-tokens": "admin_api",
    "os_compute_api:os-server-password:show": "project_reader",
    "os_compute_api:os-server-password:clear": "project_member",
    "os_compute_api:os-admin-password": "project_member",
    "os_compute_api:os-instance-actions:list": "project_reader",
    "os_compute_api:os-instance-actions:show": "project_reader",
    # flavors
    "os_compute_api:flavors:index": "project_reader",
    "os_compute_api:os-flavor-manage:create": "admin_api",
    "os_compute_api:os-flavor-manage:delete": "admin_api",
    "os_compute_api:os-flavor-extra-specs:index": "project_reader",
    "os_compute_api:os-flavor-extra-specs:create": "admin_api",
    "os_compute_api:os-flavor-extra-specs:delete": "admin_api",
    "os_compute_api:os-flavor-manage:update": "admin_api",
    "os_compute_api:os-flavor-extra-specs:show": "project_reader",
    "os_compute_api:os-flavor-extra-specs:update": "admin_api",
    "os_compute_api:os-flavor-access": "admin_api",
    "os_compute_api:os-flavor-access:add_tenant_access": "admin_api",
    "os_compute_api:os-flavor-access:remove_tenant_access": "admin_api",
    # keypairs (per user)
    "os_compute_api:os-keypairs:index": "project_reader",
    "os_compute_api:os-keypairs:show": "project_reader",
    "os_compute_api:os-keypairs:create": "project_member",
    "os_compute_api:os-keypairs:delete": "project_member",
    "os_compute_api:os-keypairs:other_user": "admin_api",
    # quotas and limits
    "os_compute_api:limits": "project_reader",
    "os_compute_api:os-quota-sets:show": "project_reader",
    "os_compute_api:os-quota-sets:defaults": "project_reader",
    "os_compute_api:os-quota-sets:show:other_project": "admin_api",
    "os_compute_api:os-quota-sets:update": "admin_api",
    "os_compute_api:os-quota-sets:delete": "admin_api",
    "os_compute_api:limits:other_project": "admin_api",
    "os_compute_api:os-quota-class-sets:show": "admin_api",
    "os_compute_api:os-quota-class-sets:update": "admin_api",
    # administration
    "os_compute_api:os-services:list": "admin_api",
    "os_compute_api:os-services:update": "admin_api",
    "os_compute_api:os-hypervisors:list": "admin_api",
    "os_compute_api:os-hypervisors:show": "admin_api",
    "os_compute_api:os-hypervisors:statistics": "admin_api",
    "os_compute_api:os-hypervisors:list-detail": "admin_api",
    "os_compute_api:os-hypervisors:uptime": "admin_api",
    "os_compute_api:os-hypervisors:search": "admin_api",
    "os_compute_api:os-hypervisors:servers": "admin_api",
    "os_compute_api:os-hosts:list": "admin_api",
    "os_compute_api:os-hosts:show": "admin_api",
    "os_compute_api:os-hosts:update": "admin_api",
    "os_compute_api:os-hosts:reboot": "admin_api",
    "os_compute_api:os-hosts:shutdown": "admin_api",
    "os_compute_api:os-hosts:start": "admin_api",
    "os_compute_api:os-simple-tenant-usage:show": "project_reader",
    "os_compute_api:os-simple-tenant-usage:list": "admin_api",
    "os_compute_api:os-instance-usage-audit-log:list": "admin_api",
    "os_compute_api:os-instance-usage-audit-log:show": "admin_api",
    "os_compute_api:extensions": "project_reader",
    "os_compute_api:os-availability-zone:list": "project_reader",
    "os_compute_api:os-availability-zone:detail": "admin_api",
    # server groups
    "os_compute_api:os-server-groups:index": "project_reader",
    "os_compute_api:os-server-groups:index:all_projects": "admin_api",
    "os_compute_api:os-server-groups:show": "project_reader",
    "os_compute_api:os-server-groups:create": "project_member",
    "os_compute_api:os-server-groups:delete": "project_member",
    # host aggregates
    "os_compute_api:os-aggregates:index": "admin_api",
    "os_compute_api:os-aggregates:create": "admin_api",
    "os_compute_api:os-aggregates:show": "admin_api",
    "os_compute_api:os-aggregates:update": "admin_api",
    "os_compute_api:os-aggregates:delete": "admin_api",
    "os_compute_api:os-aggregates:add_host": "admin_api",
    "os_compute_api:os-aggregates:remove_host": "admin_api",
    "os_compute_api:os-aggregates:set_metadata": "admin_api",
    # images
    "image:get_images": "project_reader",
    "image:get_image": "project_reader",
    "image:download_image": "project_reader",
    "image:add_image": "project_member",
    "image:upload_image": "project_member",
    "image:delete_image": "project_member",
    "image:modify_image": "project_member",
    "image:import_image": "project_member",
    "image:deactivate": "project_member",
    "image:reactivate": "project_member",
    # image members: the owner adds and removes, the member answers (checked where the
    # image is loaded, as is ownership)
    # tasks (Glance's defaults: an admin API)
    "image:add_task": "admin_api",
    "image:get_task": "admin_api",
    "image:get_tasks": "admin_api",
    # metadata definitions (Glance's defaults: everyone reads, admins write)
    "image:get_metadef_namespace": "project_reader",
    "image:get_metadef_namespaces": "project_reader",
    "image:get_metadef_object": "project_reader",
    "image:get_metadef_objects": "project_reader",
    "image:get_metadef_property": "project_reader",
    "image:get_metadef_properties": "project_reader",
    "image:get_metadef_tag": "project_reader",
    "image:get_metadef_tags": "project_reader",
    "image:list_metadef_resource_types": "project_reader",
    "image:get_metadef_resource_type": "project_reader",
    "image:add_metadef_namespace": "admin_api",
    "image:modify_metadef_namespace": "admin_api",
    "image:delete_metadef_namespace": "admin_api",
    "image:add_metadef_object": "admin_api",
    "image:modify_metadef_object": "admin_api",
    "image:delete_metadef_object": "admin_api",
    "image:add_metadef_property": "admin_api",
    "image:modify_metadef_property": "admin_api",
    "image:remove_metadef_property": "admin_api",
    "image:add_metadef_tag": "admin_api",
    "image:add_metadef_tags": "admin_api",
    "image:modify_metadef_tag": "admin_api",
    "image:delete_metadef_tag": "admin_api",
    "image:delete_metadef_tags": "admin_api",
    "image:add_metadef_resource_type_association": "admin_api",
    "image:remove_metadef_resource_type_association": "admin_api",
    "image:add_member": "project_member",
    "image:delete_member": "project_member",
    "image:get_member": "project_reader",
    "image:get_members": "project_reader",
    "image:modify_member": "project_member",
    # identity administration
    "identity:list_projects": "admin_api",
    "identity:create_project": "admin_api",
    "identity:delete_project": "admin_api",
    "identity:list_users": "admin_api",
    "identity:create_user": "admin_api",
    "identity:delete_user": "admin_api",
    "identity:list_roles": "admin_api",
    "identity:create_grant": "admin_api",
    "identity:revoke_grant": "admin_api",
    "identity:list_grants": "admin_api",
    # a user's own credentials and projects (or an admin's view of them): the owner
    # check is made where the user is named
    "identity:create_application_credential": "project_reader",
    "identity:list_application_credentials": "project_reader",
    "identity:get_application_credential": "project_reader",
    "identity:delete_application_credential": "project_reader",
    "identity:ec2_create_credential": "project_reader",
    "identity:ec2_list_credentials": "project_reader",
    "identity:ec2_get_credential": "project_reader",
    "identity:ec2_delete_credential": "project_reader",
    "identity:list_user_projects": "project_reader",
    # block storage (Cinder's rule names) and Nova's os-volume_attachments
    "volume:create": "project_member",
    "volume:get": "project_reader",
    "volume:get_all": "project_reader",
    "volume:get_all_tenants": "admin_api",
    "volume:update": "project_member",
    "volume:delete": "project_member",
    "volume:extend": "project_member",
    "volume:create_snapshot": "project_member",
    "volume:get_snapshot": "project_reader",
    "volume:get_all_snapshots": "project_reader",
    "volume:update_snapshot": "project_member",
    "volume:delete_snapshot": "project_member",
    "volume:attachment_get_all": "project_reader",
    "volume:attachment_get": "project_reader",
    "volume_extension:type_get_all": "project_reader",
    "volume_extension:type_get": "project_reader",
    "volume_extension:quotas:show": "project_reader",
    "volume_extension:quotas:show_other": "admin_api",
    "volume_extension:quotas:update": "admin_api",
    "volume_extension:quotas:delete": "admin_api",
    "volume:get_volume_summary": "project_reader",
    "volume_extension:availability_zone_list": "project_reader",
    "volume_extension:volume_admin_actions:reset_status": "admin_api",
    "volume_extension:volume_admin_actions:force_delete": "admin_api",
    "volume_extension:volume_admin_actions:force_detach": "admin_api",
    "limits_extension:used_limits": "project_reader",
    "os_compute_api:os-volumes:list": "project_reader",
    "os_compute_api:os-volumes:detail": "project_reader",
    "os_compute_api:os-volumes:show": "project_reader",
    "os_compute_api:os-volumes:create": "project_member",
    "os_compute_api:os-volumes:delete": "project_member",
    "os_compute_api:os-volumes:snapshots:list": "project_reader",
    "os_compute_api:os-volumes:snapshots:detail": "project_reader",
    "os_compute_api:os-volumes:snapshots:show": "project_reader",
    "os_compute_api:os-volumes:snapshots:create": "project_member",
    "os_compute_api:os-volumes:snapshots:delete": "project_member",
    "os_compute_api:os-volumes-attachments:index": "project_reader",
    "os_compute_api:os-volumes-attachments:show": "project_reader",
    "os_compute_api:os-volumes-attachments:create": "project_member",
    "os_compute_api:os-volumes-attachments:update": "admin_api",
    "os_compute_api:os-volumes-attachments:swap": "admin_api",
    "os_compute_api:os-volumes-attachments:delete": "project_member",
    # Nova's networking proxies
    "os_compute_api:os-security-groups:add": "project_member",
    "os_compute_api:os-security-groups:remove": "project_member",
    "os_compute_api:os-security-groups:list": "project_reader",
    "os_compute_api:os-security-groups:get": "project_reader",
    "os_compute_api:os-security-groups:show": "project_reader",
    "os_compute_api:os-security-groups:create": "project_member",
    "os_compute_api:os-security-groups:update": "project_member",
    "os_compute_api:os-security-groups:delete": "project_member",
    "os_compute_api:os-security-groups:rule:create": "project_member",
    "os_compute_api:os-security-groups:rule:delete": "project_member",
    "os_compute_api:os-attach-interfaces:list": "project_reader",
    "os_compute_api:os-attach-interfaces:show": "project_reader",
    "os_compute_api:os-attach-interfaces:create": "project_member",
    "os_compute_api:os-attach-interfaces:delete": "project_member",
    "os_compute_api:os-networks:list": "project_reader",
    "os_compute_api:os-networks:view": "project_reader",
    "os_compute_api:os-tenant-networks:list": "project_reader",
    "os_compute_api:os-tenant-networks:show": "project_reader",
    # Neutron (its own rule names); whose resource it is is decided where it is loaded
    "get_quota": "project_reader",
    "get_network": "project_reader",
    "create_network": "project_member",
    "update_network": "project_member",
    "delete_network": "project_member",
    "get_subnet": "project_reader",
    "create_subnet": "project_member",
    "update_subnet": "project_member",
    "delete_subnet": "project_member",
    "get_port": "project_reader",
    "create_port": "project_member",
    "update_port": "project_member",
    "delete_port": "project_member",
    "get_security_group": "project_reader",
    "create_security_group": "project_member",
    "update_security_group": "project_member",
    "delete_security_group": "project_member",
    "get_security_group_rule": "project_reader",
    "create_security_group_rule": "project_member",
    "delete_security_group_rule": "project_member",
}


def effective_roles(roles: list[str] | tuple[str, ...] | set[str]) -> set[str]:
    """The roles a user holds, with the ones they imply (admin -> manager -> member ->
    reader)."""
    have = set(roles)
    for i, role in enumerate(ROLE_ORDER):
        if role in have:
            have.update(ROLE_ORDER[i + 1:])
    return have


def allowed(roles: list[str] | tuple[str, ...] | set[str], rule: str) -> bool:
    return KINDS[RULES[rule]] in effective_roles(roles)


def authorize(ctx: object, rule: str) -> None:
    """Raise Forbidden (Nova's message) unless ``ctx``'s roles pass ``rule``."""
    if not allowed(getattr(ctx, "roles", ()), rule):
        raise Forbidden(f"Policy doesn't allow {rule} to be performed.")


def table() -> list[tuple[str, str, str]]:
    """(rule, kind, roles that pass) for every rule, sorted by rule."""
    out = []
    for rule, kind in sorted(RULES.items()):
        least = KINDS[kind]
        who = ", ".join(ROLE_ORDER[: ROLE_ORDER.index(least) + 1])
        out.append((rule, kind, who))
    return out
