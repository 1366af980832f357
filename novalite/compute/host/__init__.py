"""The compute host's side: what runs beside a hypervisor, on whichever machine that is.

The compute actor (:mod:`novalite.compute.host.manager`, one per host, the
``compute.<host>`` topic), its batched periodic tasks for many hosts in one
process (:mod:`novalite.compute.host.fleet`), and the image data it boots from.

Nothing here imports the database (DESIGN.md boundary 1) or assumes it shares a
machine with the control process (boundary 9): image data arrives over HTTP
from the image API (:mod:`novalite.compute.host.image_client`), is kept in a
verified local cache (:mod:`novalite.compute.host.image_cache`), and snapshots
leave the same way.
"""
