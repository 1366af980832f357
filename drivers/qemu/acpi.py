"""Does the guest listen to the ACPI power button? Read from QEMU, without asking it.

QEMU's ``system_powerdown`` sets the power button's status bit only if the guest OS
has set PWRBTN_EN in the PM1 enable register (``acpi_pm1_evt_power_down``); otherwise
the press is dropped and nothing will ever happen. An OS sets the bit once its ACPI
button driver is loaded (Linux: ``button``), a few seconds into its boot; a guest
without ACPI support (a real-mode boot sector, DOS, a kernel built without ACPI) never
does. So the driver presses only when the bit is set, and does not wait for a
shutdown that cannot come.

The register is read over QMP: the machine's ``acpi-device`` link names the PM device
(PIIX4 on ``pc``, ICH9 LPC on ``q35``), its ``pm_io_base`` property the I/O port of its
PM1 event block (set by the firmware), and ``human-monitor-command`` ``i/h`` reads the
16-bit enable register at base + 2 (a read has no side effect). Machines without a
PM1 block (``microvm``) answer None: unknown.
"""

from __future__ import annotations

import re

from .qmp import QmpClient, QmpCommandError

#: PM1_EN bit: the OS enabled the fixed power button event.
PWRBTN_EN = 0x0100
_PORT_VALUE = re.compile(r"=\s*0x([0-9a-fA-F]+)")


async def power_button_enabled(client: QmpClient) -> bool | None:
    """True when the guest enabled its ACPI power button, False when a press would be
    dropped, None when this machine has no PM1 block to tell."""
    try:
        device = await client.execute("qom-get", {"path": "/machine",
                                                  "property": "acpi-device"})
        if not device:
            return None
        base = await client.execute("qom-get", {"path": str(device),
                                                "property": "pm_io_base"})
    except QmpCommandError:
        return None
    if not isinstance(base, int):
        return None
    if base == 0:  # the firmware has not even placed the PM block yet
        return False
    out = await client.execute("human-monitor-command",
                               {"command-line": f"i/h 0x{base + 2:x}"})
    match = _PORT_VALUE.search(str(out))
    if match is None:
        return None
    return bool(int(match.group(1), 16) & PWRBTN_EN)
