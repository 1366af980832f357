"""Resolve servers, flavors and images given by name or id, as the OpenStack clients do.

Each finder first tries a GET by id; on 404 it lists with a name filter and
keeps exact matches. No match is a `CommandError`; several matches are a
`CommandError` that lists the matching ids.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from novalite.cli.client import Session
from novalite.cli.nova_errors import CommandError

# A by-id GET of something that is not an id may answer 404 or (for malformed ids) 400.
NOT_FOUND = (400, 404)


def _one(kind: str, ref: str, matches: list[dict[str, Any]]) -> dict[str, Any]:
    if not matches:
        raise CommandError(f"No {kind} with a name or ID of '{ref}' exists.")
    if len(matches) > 1:
        ids = ", ".join(str(match.get("id")) for match in matches)
        raise CommandError(
            f"Multiple {kind} matches found for '{ref}', use an ID to be more specific: {ids}"
        )
    return matches[0]


def find_server(session: Session, ref: str) -> dict[str, Any]:
    """The server ``ref`` names (full body when found by id, else ``{id, name, ...}``)."""
    response = session.compute("GET", f"/servers/{quote(ref, safe='')}", accept=NOT_FOUND)
    if response.status_code == 200:
        server: dict[str, Any] = response.json()["server"]
        return server
    candidates = session.compute_list("/servers", "servers", {"name": f"^{re.escape(ref)}$"})
    return _one("server", ref, [s for s in candidates if s.get("name") == ref])


def get_server(session: Session, ref: str) -> dict[str, Any]:
    """The full body of the server ``ref`` names."""
    server = find_server(session, ref)
    if "status" in server:
        return server
    full: dict[str, Any] = session.compute_json("GET", f"/servers/{server['id']}")["server"]
    return full


def find_flavor(session: Session, ref: str) -> dict[str, Any]:
    """The flavor ``ref`` names (by id, else by exact name among all flavors)."""
    response = session.compute("GET", f"/flavors/{quote(ref, safe='')}", accept=NOT_FOUND)
    if response.status_code == 200:
        flavor: dict[str, Any] = response.json()["flavor"]
        return flavor
    flavors = session.compute_list("/flavors/detail", "flavors", {"is_public": "None"})
    return _one("flavor", ref, [f for f in flavors if f.get("name") == ref])


def find_image(session: Session, ref: str) -> dict[str, Any]:
    """The image ``ref`` names (by id, else Glance's ``?name=`` filter)."""
    response = session.image("GET", f"/images/{quote(ref, safe='')}", accept=NOT_FOUND)
    if response.status_code == 200:
        image: dict[str, Any] = response.json()
        return image
    images = session.image_list({"name": ref})
    return _one("image", ref, [i for i in images if i.get("name") == ref])


def image_name(session: Session, image: Any) -> str | None:
    """The name of a server's image, or ``None`` when it cannot be looked up."""
    from novalite.cli.nova_errors import CliError

    image_id = image.get("id") if isinstance(image, dict) else None
    if not image_id:
        return None
    try:
        found = session.image("GET", f"/images/{quote(str(image_id), safe='')}", accept=(404,))
    except CliError:
        return None
    if found.status_code != 200:
        return None
    try:
        name = found.json().get("name")
    except ValueError:
        return None
    return str(name) if name is not None else None
