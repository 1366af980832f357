"""Host filters, with Nova's names and meanings. Each returns True to keep a host."""

from __future__ import annotations

from collections.abc import Callable

from novalite.scheduler.host_state import HostState, RequestSpec


class Filter:
    """A host filter: ``host_passes`` is called for every candidate host."""

    name = ""

    def __init__(self, options: dict) -> None:  # type: ignore[type-arg]
        self.options = options

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        raise NotImplementedError


class AllHostsFilter(Filter):
    """Keeps every host."""

    name = "AllHostsFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return True


class ComputeFilter(Filter):
    """Keeps hosts whose compute service is enabled and up."""

    name = "ComputeFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return not host.disabled and host.is_up(self.options["service_down_time"])


class ResourceFilter(Filter):
    """Keeps hosts with room for the flavor's vCPUs, RAM and disk under the allocation ratios."""

    name = "ResourceFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return (
            host.free_vcpus >= spec.vcpus
            and host.free_ram_mb >= spec.memory_mb
            and host.free_disk_gb >= spec.disk_gb
        )


class AvailabilityZoneFilter(Filter):
    """Keeps hosts in the requested availability zone (any host when none is requested)."""

    name = "AvailabilityZoneFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return not spec.availability_zone or host.availability_zone == spec.availability_zone


class ImagePropertiesFilter(Filter):
    """Keeps hosts that can run the image's ``hypervisor_type`` and ``architecture``."""

    name = "ImagePropertiesFilter"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        props = spec.image_properties
        want_hv = props.get("hypervisor_type") or props.get("img_hv_type")
        want_arch = props.get("architecture")
        if not want_hv and not want_arch:
            return True
        for arch, hv, _mode in host.supported_instances or []:
            if want_hv and _hv_name(want_hv) != _hv_name(hv):
                continue
            if want_arch and want_arch != arch:
                continue
            return True
        return False


def _hv_name(name: str) -> str:
    # Nova treats kvm and qemu images alike: both run on a QEMU host.
    name = str(name).lower()
    return "qemu" if name in ("kvm", "qemu") else name


BUILTIN: dict[str, Callable[[dict], Filter]] = {  # type: ignore[type-arg]
    cls.name: cls
    for cls in (AllHostsFilter, ComputeFilter, ResourceFilter, AvailabilityZoneFilter,
                ImagePropertiesFilter)
}
