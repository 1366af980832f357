"""Where the `nova` client finds its credentials.

Looked up in this order, first match wins:

1. ``OS_*`` environment variables, when ``OS_AUTH_URL`` is set (an openrc file).
2. ``OS_CLOUD=<name>``: that cloud from a ``clouds.yaml`` found the way
   openstacksdk looks: ``OS_CLIENT_CONFIG_FILE``, ``./clouds.yaml``,
   ``~/.config/openstack/clouds.yaml``, ``/etc/openstack/clouds.yaml``.
3. The cloud named ``novalite`` in the ``clouds.yaml`` that ``novalite serve``
   writes into its state directory (``$NOVALITE_STATE_PATH``, else the user
   data directory, ``~/.local/share/novalite``).

Only the standard library is imported at module level; PyYAML is imported
when a ``clouds.yaml`` is actually read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DOMAIN = "Default"
NOVALITE_CLOUD = "novalite"


class CredentialsError(Exception):
    """No usable credentials were found; the message says how to provide them."""


@dataclass(frozen=True)
class Credentials:
    """What is needed for a project-scoped Keystone v3 password authentication."""

    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str | None = DEFAULT_DOMAIN
    project_domain_name: str | None = DEFAULT_DOMAIN
    user_domain_id: str | None = None
    project_domain_id: str | None = None
    region_name: str | None = None
    cacert: str | None = None
    insecure: bool = False
    source: str = ""

    @property
    def token_url(self) -> str:
        """``<auth_url>/v3/auth/tokens``, adding ``/v3`` unless the URL has it."""
        base = self.auth_url.rstrip("/")
        if not base.endswith("/v3"):
            base += "/v3"
        return base + "/auth/tokens"


def novalite_state_path(environ: Mapping[str, str]) -> Path:
    """The state directory of ``novalite serve`` (platformdirs' user data dir, by hand)."""
    explicit = environ.get("NOVALITE_STATE_PATH")
    if explicit:
        return Path(explicit).expanduser()
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "novalite"


def clouds_yaml_candidates(environ: Mapping[str, str]) -> list[Path]:
    """The ``clouds.yaml`` files openstacksdk would consider, in its order."""
    paths: list[Path] = []
    explicit = environ.get("OS_CLIENT_CONFIG_FILE")
    if explicit:
        paths.append(Path(explicit).expanduser())
    paths.append(Path.cwd() / "clouds.yaml")
    config_home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths.append(Path(config_home) / "openstack" / "clouds.yaml")
    paths.append(Path("/etc/openstack/clouds.yaml"))
    return paths


def load_credentials(environ: Mapping[str, str] | None = None) -> Credentials:
    """Find credentials (see the module docstring) or raise `CredentialsError`."""
    env = os.environ if environ is None else environ
    if env.get("OS_AUTH_URL"):
        return _from_environment(env)
    cloud = env.get("OS_CLOUD")
    if cloud:
        return _from_named_cloud(cloud, env)
    state_file = novalite_state_path(env) / "clouds.yaml"
    if state_file.is_file():
        entry = _read_clouds(state_file).get(NOVALITE_CLOUD)
        if isinstance(entry, dict):
            return _from_cloud_entry(entry, env, f"cloud {NOVALITE_CLOUD!r} in {state_file}")
    raise CredentialsError(_no_credentials_help(state_file))


def _no_credentials_help(state_file: Path) -> str:
    return (
        "no credentials found. Either export OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and "
        "OS_PROJECT_NAME (source an openrc file), or set OS_CLOUD=<name> for a cloud in "
        "clouds.yaml, or start `novalite serve`, which writes the 'novalite' cloud to "
        f"{state_file} (set NOVALITE_STATE_PATH if it uses another state directory)."
    )


def _from_environment(env: Mapping[str, str]) -> Credentials:
    missing = [
        name for name in ("OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME") if not env.get(name)
    ]
    if missing:
        raise CredentialsError(
            f"OS_AUTH_URL is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not: export them too (or unset OS_AUTH_URL to use clouds.yaml)."
        )
    user_domain_id = env.get("OS_USER_DOMAIN_ID")
    project_domain_id = env.get("OS_PROJECT_DOMAIN_ID")
    return Credentials(
        auth_url=env["OS_AUTH_URL"],
        username=env["OS_USERNAME"],
        password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"],
        user_domain_name=_domain_name(env.get("OS_USER_DOMAIN_NAME"), user_domain_id),
        project_domain_name=_domain_name(env.get("OS_PROJECT_DOMAIN_NAME"), project_domain_id),
        user_domain_id=user_domain_id,
        project_domain_id=project_domain_id,
        region_name=env.get("OS_REGION_NAME") or None,
        cacert=env.get("OS_CACERT") or None,
        insecure=_truthy(env.get("OS_INSECURE")),
        source="OS_* environment variables",
    )


def _from_named_cloud(cloud: str, env: Mapping[str, str]) -> Credentials:
    searched = clouds_yaml_candidates(env)
    for path in searched:
        if not path.is_file():
            continue
        entry = _read_clouds(path).get(cloud)
        if isinstance(entry, dict):
            return _from_cloud_entry(entry, env, f"cloud {cloud!r} in {path}")
    names = ", ".join(str(p) for p in searched)
    raise CredentialsError(f"OS_CLOUD={cloud} but no cloud {cloud!r} in any of: {names}")


def _read_clouds(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(path.read_text(), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from None
    clouds = data.get("clouds") if isinstance(data, dict) else None
    return clouds if isinstance(clouds, dict) else {}


def _from_cloud_entry(entry: dict[str, Any], env: Mapping[str, str], source: str) -> Credentials:
    auth = entry.get("auth") or {}
    missing = [key for key in ("auth_url", "username", "password") if not auth.get(key)]
    project = auth.get("project_name") or auth.get("tenant_name")
    if not project:
        missing.append("project_name")
    if missing:
        raise CredentialsError(f"{source}: auth lacks {', '.join(missing)}")
    user_domain_id = auth.get("user_domain_id") or auth.get("domain_id")
    project_domain_id = auth.get("project_domain_id") or auth.get("domain_id")
    shared_domain = auth.get("domain_name")
    verify = entry.get("verify", True)
    return Credentials(
        auth_url=str(auth["auth_url"]),
        username=str(auth["username"]),
        password=str(auth["password"]),
        project_name=str(project),
        user_domain_name=_domain_name(
            auth.get("user_domain_name") or shared_domain, user_domain_id
        ),
        project_domain_name=_domain_name(
            auth.get("project_domain_name") or shared_domain, project_domain_id
        ),
        user_domain_id=user_domain_id,
        project_domain_id=project_domain_id,
        region_name=env.get("OS_REGION_NAME") or entry.get("region_name") or None,
        cacert=entry.get("cacert") or None,
        insecure=verify is False or _truthy(str(entry.get("insecure", ""))),
        source=source,
    )


def _domain_name(name: str | None, domain_id: str | None) -> str | None:
    """A domain name, defaulting to ``Default`` when neither a name nor an id is given."""
    if name:
        return name
    return None if domain_id else DEFAULT_DOMAIN


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}
