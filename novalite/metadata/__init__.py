"""nova-api-metadata: what a guest learns about itself, and how it gets there.

* :mod:`.content` - the OpenStack and EC2 metadata trees as plain data (no I/O).
* :mod:`.password` - the guest's encrypted password (``/openstack/latest/password``).
* :mod:`.configdrive` - the same trees on a ``config-2`` ISO 9660 image (compute host).
* :mod:`.proxy` - the compute host's per-guest relay (a UNIX socket per guest; it
  signs each request with the guest's uuid, as Neutron's metadata agent does).
* :mod:`.service` - the metadata API (``[metadata] metadata_listen_port``, 8775): it
  answers only requests the relay signed.

This package's ``__init__`` imports nothing: the compute host imports
:mod:`.proxy`, :mod:`.content` and :mod:`.configdrive`, which touch no database.
"""
