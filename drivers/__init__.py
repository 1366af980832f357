"""novalite's built-in hypervisor drivers, shipped as ``novalite_drivers``.

They register through the ``novalite.drivers`` entry-point group exactly as
third-party plugins do (see novalite's ``pyproject.toml``).
"""
