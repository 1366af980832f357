"""Host filters, with Nova's names and meanings.

The contract (the same for built-ins and third-party plugins): a subclass of
:class:`Filter` registered in the ``novalite.scheduler.filters`` entry-point group.

* ``host_passes(host, spec)`` - True to keep ``host`` for ``spec``. Required.
* ``filter_all(hosts, spec)`` - the kept hosts of a list; by default calls
  ``host_passes`` on each (Nova's ``BaseFilter.filter_all``). Override it when
  one pass over the list is faster (the built-ins do).
* ``applies(spec)`` - False when the filter cannot remove a host for this spec
  (no hint, no group, no image property, ...): the scheduler then skips it.
  Defaults to True.

Example::

    class EvenHostsFilter(Filter):
        name = "EvenHostsFilter"

        def host_passes(self, host, spec):
            return host.host[-1] in "02468"

``options`` holds the ``[scheduler]`` section's values as a dict.
"""

from __future__ import annotations

import time
from typing import Any

from novalite.scheduler import extra_specs_ops
from novalite.scheduler.host_state import HostState, RequestSpec


class Filter:
    """A host filter: ``host_passes`` is called for every candidate host."""

    name = ""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def applies(self, spec: RequestSpec) -> bool:
        """False when this filter would keep every host for ``spec`` (it is then skipped)."""
        return True

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        raise NotImplementedError

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        """The hosts of ``hosts`` that pass, in order."""
        passes = self.host_passes
        return [h for h in hosts if passes(h, spec)]


class AllHostsFilter(Filter):
    """Keeps every host."""

    name = "AllHostsFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return False

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return True


class ComputeFilter(Filter):
    """Keeps hosts whose compute service is enabled and up."""

    name = "ComputeFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return not host.disabled and host.is_up(self.options["service_down_time"])

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        oldest = time.monotonic() - self.options["service_down_time"]
        return [h for h in hosts if not h.disabled and h.last_seen > oldest and h.last_seen > 0]


class ResourceFilter(Filter):
    """Keeps hosts with room for the flavor's vCPUs, RAM and disk under the allocation ratios
    (Nova's CoreFilter, RamFilter and DiskFilter in one pass; per-host ratios come from
    aggregate metadata ``cpu_allocation_ratio`` / ``ram_allocation_ratio`` /
    ``disk_allocation_ratio``, as Nova's Aggregate*Filter did)."""

    name = "ResourceFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return (host.free_vcpus >= spec.vcpus and host.free_ram_mb >= spec.memory_mb
                and host.free_disk_gb >= spec.disk_gb)

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        v, m, d = spec.vcpus, spec.memory_mb, spec.disk_gb
        return [h for h in hosts if h.free_ram_mb >= m and h.free_vcpus >= v
                and h.free_disk_gb >= d]


class CoreFilter(Filter):
    """Nova's historical CoreFilter: room for the flavor's vCPUs (× cpu_allocation_ratio)."""

    name = "CoreFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.free_vcpus >= spec.vcpus


class RamFilter(Filter):
    """Nova's historical RamFilter: room for the flavor's RAM (× ram_allocation_ratio)."""

    name = "RamFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.free_ram_mb >= spec.memory_mb


class DiskFilter(Filter):
    """Nova's historical DiskFilter: room for the flavor's disk (× disk_allocation_ratio)."""

    name = "DiskFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.free_disk_gb >= spec.disk_gb


class AvailabilityZoneFilter(Filter):
    """Keeps hosts in the requested availability zone (any host when none is requested).

    A host's zone is its aggregate's ``availability_zone``, else ``[compute]
    availability_zone``."""

    name = "AvailabilityZoneFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.availability_zone)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return not spec.availability_zone or host.availability_zone == spec.availability_zone

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        zone = spec.availability_zone
        return [h for h in hosts if h.availability_zone == zone]


_CAPS_SCOPE = "capabilities"
_AGG_SCOPE = "aggregate_instance_extra_specs"


def _scoped(extra_specs: dict[str, str], scope: str) -> list[tuple[list[str], str]]:
    """(key path, requirement) for the unscoped keys and those of ``scope``."""
    out = []
    for key, req in extra_specs.items():
        parts = key.split(":")
        if len(parts) > 1:
            if parts[0] != scope:
                continue
            parts = parts[1:]
        out.append((parts, req))
    return out


class ComputeCapabilitiesFilter(Filter):
    """Keeps hosts whose capabilities satisfy the flavor's extra specs.

    As in Nova: keys scoped ``capabilities:`` and unscoped keys are checked
    against the host's attributes (``capabilities:hypervisor_type``,
    ``capabilities:cpu_info:arch``, ``capabilities:vcpus_total``, ...) with the
    extra-spec operators (``>=``, ``<in>``, ``s==``, ``<or>``, ...); keys of any
    other scope (``hw:``, ``quota:``, ...) are ignored."""

    name = "ComputeCapabilitiesFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return bool(_scoped(spec.extra_specs, _CAPS_SCOPE))

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        for path, req in _scoped(spec.extra_specs, _CAPS_SCOPE):
            value: Any = host.capability(path[0])
            for part in path[1:]:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None or not extra_specs_ops.match(value, req):
                return False
        return True


class AggregateInstanceExtraSpecsFilter(Filter):
    """Keeps hosts whose aggregates' metadata satisfy the flavor's extra specs.

    Keys scoped ``aggregate_instance_extra_specs:`` and unscoped keys must be in
    the metadata of one of the host's aggregates with a matching value."""

    name = "AggregateInstanceExtraSpecsFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return bool(_scoped(spec.extra_specs, _AGG_SCOPE))

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        metadata = host.aggregate_metadata
        for path, req in _scoped(spec.extra_specs, _AGG_SCOPE):
            values = metadata.get(":".join(path))
            if not values or not any(extra_specs_ops.match(v, req) for v in values):
                return False
        return True


_VM_MODES = {"hv": "hvm", "baremetal": "hvm", "qemu": "hvm", "pv": "xen", "hvm": "hvm"}


def _hv_name(name: str) -> str:
    # Nova treats kvm and qemu images alike: both run on a QEMU host.
    name = str(name).lower()
    return "qemu" if name in ("kvm", "qemu") else name


def _vm_mode(name: str) -> str:
    name = str(name).lower()
    return _VM_MODES.get(name, name)


class ImagePropertiesFilter(Filter):
    """Keeps hosts that can run the image's architecture, hypervisor type and vm mode
    (``architecture``/``hw_architecture``, ``hypervisor_type``/``img_hv_type``,
    ``hw_vm_mode``/``vm_mode``), matched on the host's supported instances."""

    name = "ImagePropertiesFilter"

    @staticmethod
    def _wanted(spec: RequestSpec) -> tuple[str | None, str | None, str | None]:
        props = spec.image_properties
        arch = props.get("hw_architecture") or props.get("architecture")
        hv = props.get("img_hv_type") or props.get("hypervisor_type")
        mode = props.get("hw_vm_mode") or props.get("vm_mode")
        return (str(arch).lower() if arch else None, _hv_name(hv) if hv else None,
                _vm_mode(mode) if mode else None)

    def applies(self, spec: RequestSpec) -> bool:
        return any(self._wanted(spec))

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return self._supports(host.supported_instances, self._wanted(spec))

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        # Hosts of one kind report the same supported instances: decide once per kind.
        wanted = self._wanted(spec)
        good = {k for k in {h.supported_instances for h in hosts}
                if self._supports(k, wanted)}
        return [h for h in hosts if h.supported_instances in good]

    @staticmethod
    def _supports(supported: Any, wanted: tuple[str | None, str | None, str | None]) -> bool:
        want_arch, want_hv, want_mode = wanted
        if not (want_arch or want_hv or want_mode):
            return True
        for arch, hv, mode in supported or ():
            if want_arch and want_arch != str(arch).lower():
                continue
            if want_hv and want_hv != _hv_name(hv):
                continue
            if want_mode and want_mode != _vm_mode(mode):
                continue
            return True
        return False


class NumInstancesFilter(Filter):
    """Keeps hosts with fewer than ``[scheduler] max_instances_per_host`` instances."""

    name = "NumInstancesFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.num_instances < int(self.options["max_instances_per_host"])

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        most = self.options["max_instances_per_host"]
        return [h for h in hosts if h.num_instances < most]


class SameHostFilter(Filter):
    """With the ``same_host`` hint: keeps hosts holding at least one of the given instances."""

    name = "SameHostFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.same_host)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return not spec.same_host or any(u in host.instances for u in spec.same_host)


class DifferentHostFilter(Filter):
    """With the ``different_host`` hint: keeps hosts holding none of the given instances."""

    name = "DifferentHostFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return bool(spec.different_host)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return not any(u in host.instances for u in spec.different_host)


class ServerGroupAffinityFilter(Filter):
    """For an ``affinity`` group: once the group has members, keeps only their hosts."""

    name = "ServerGroupAffinityFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return spec.group_policy == "affinity" and bool(spec.group_hosts)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        if spec.group_policy != "affinity" or not spec.group_hosts:
            return True
        return host.host in spec.group_hosts


class ServerGroupAntiAffinityFilter(Filter):
    """For an ``anti-affinity`` group: keeps hosts with fewer than ``max_server_per_host``
    (rule; default 1) of the group's members."""

    name = "ServerGroupAntiAffinityFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return spec.group_policy == "anti-affinity" and bool(spec.group_hosts)

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        if spec.group_policy != "anti-affinity":
            return True
        most = int(((spec.group or {}).get("rules") or {}).get("max_server_per_host", 1))
        return spec.group_hosts.get(host.host, 0) < most

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        most = int(((spec.group or {}).get("rules") or {}).get("max_server_per_host", 1))
        taken = spec.group_hosts
        return [h for h in hosts if taken.get(h.host, 0) < most]


class IsolatedHostsFilter(Filter):
    """``[scheduler] isolated_hosts`` run only ``isolated_images`` (and, with
    ``restrict_isolated_hosts_to_isolated_images``, isolated images run only there)."""

    name = "IsolatedHostsFilter"

    def applies(self, spec: RequestSpec) -> bool:
        return bool(self.options["isolated_hosts"] or self.options["isolated_images"])

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        image_isolated = spec.image_id in self.options["isolated_images"]
        host_isolated = host.host in self.options["isolated_hosts"]
        if self.options["restrict_isolated_hosts_to_isolated_images"]:
            return image_isolated == host_isolated
        return (not image_isolated) or host_isolated
