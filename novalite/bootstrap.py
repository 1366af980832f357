"""What a first start creates: admin credentials (clouds.yaml, openrc), Nova's default
flavors, a demo image."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import structlog
from sqlmodel import Session, select

from novalite.config import Config
from novalite.db.engine import Database
from novalite.db.models import Flavor, Image
from novalite.image.service import ImageService
from novalite.virt.driver import DemoImage, Driver

log = structlog.get_logger("novalite.bootstrap")

#: Nova's (and DevStack's) default flavors: (id, name, ram MiB, disk GiB, vcpus).
DEFAULT_FLAVORS = [
    ("42", "m1.nano", 128, 1, 1),
    ("84", "m1.micro", 256, 1, 1),
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 20, 1),
    ("3", "m1.medium", 4096, 40, 2),
    ("4", "m1.large", 8192, 80, 4),
    ("5", "m1.xlarge", 16384, 160, 8),
]


def clouds_yaml_path(cfg: Config) -> str:
    return os.path.join(cfg.state_path, "clouds.yaml")


def openrc_path(cfg: Config) -> str:
    return os.path.join(cfg.state_path, "openrc")


def write_clouds_yaml(cfg: Config, generated_password: str | None) -> str | None:
    """Write the ``novalite`` cloud entry of ``clouds.yaml`` and, beside it, ``openrc``
    (the same credentials as ``OS_*`` variables, for python-novaclient, which reads no
    clouds.yaml) when the admin password is known: configured, generated at this start,
    or kept in the clouds.yaml of an earlier start (then both are rewritten with this
    start's URL, so a new ``--port`` reaches the clients). Both are mode 0600."""
    path = clouds_yaml_path(cfg)
    password = (cfg.identity.admin_password or generated_password
                or _password_in_clouds_yaml(path))
    if not password:
        return path if os.path.exists(path) else None
    import yaml

    auth_url = f"{cfg.public_url}/identity"
    doc: dict[str, Any] = {"clouds": {"novalite": {
        "auth": {"auth_url": auth_url, "username": "admin",
                 "password": password, "project_name": "admin",
                 "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": cfg.identity.region, "identity_api_version": 3,
        "interface": "public"}}}
    _write_private(cfg.state_path, path, yaml.safe_dump(doc, sort_keys=False))
    openrc = openrc_path(cfg)
    first = not os.path.exists(openrc)
    _write_private(cfg.state_path, openrc, openrc_text(openrc, {
        "OS_AUTH_URL": auth_url, "OS_USERNAME": "admin", "OS_PASSWORD": password,
        "OS_PROJECT_NAME": "admin", "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": cfg.identity.region,
        "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public",
        "OS_ENDPOINT_TYPE": "publicURL"}))
    if first:
        log.info("admin credentials written for python-novaclient", openrc=openrc,
                 hint=f"source {openrc}")
    return path


def openrc_text(path: str, variables: dict[str, str]) -> str:
    """A shell file exporting ``variables``, each value quoted for the shell."""
    import shlex

    lines = ["# novalite's admin credentials as OS_* variables, for python-novaclient,",
             "# python-openstackclient and openstacksdk:",
             f"#   source {shlex.quote(path)}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    return "\n".join(lines) + "\n"


def _password_in_clouds_yaml(path: str) -> str | None:
    """The admin password an earlier start wrote to clouds.yaml, if it is readable."""
    import yaml

    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
        password = doc["clouds"]["novalite"]["auth"]["password"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return password if isinstance(password, str) and password else None


def _write_private(directory: str, path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, readable by its owner only."""
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def default_flavors(db: Database) -> None:
    def work(s: Session) -> int:
        if s.exec(select(Flavor)).first() is not None:
            return 0
        for flavorid, name, ram, disk, vcpus in DEFAULT_FLAVORS:
            s.add(Flavor(flavorid=flavorid, name=name, memory_mb=ram, root_gb=disk,
                         vcpus=vcpus))
        return len(DEFAULT_FLAVORS)

    created = await db.write(work)
    if created:
        log.info("default flavors created", count=created)


async def demo_image(images: ImageService, driver: type[Driver], cfg: Config) -> None:
    """Register the ``demo`` image once: the one the configured driver offers
    (:meth:`Driver.demo_image`), if it offers one."""
    found = await images.db.read(
        lambda s: s.exec(select(Image).where(Image.name == "demo")).first())
    if found is not None:
        return
    os.makedirs(cfg.state_path, exist_ok=True)
    demo: DemoImage | None = await _to_thread(driver.demo_image, cfg.state_path)
    if demo is None:
        log.info("the driver offers no demo image; none registered", driver=driver.name)
        return
    if demo.data is not None:  # bytes: a file only for the time it takes to register
        path = os.path.join(cfg.state_path, "demo-image.part")
        with open(path, "wb") as f:
            f.write(demo.data)
    else:
        assert demo.path is not None
        path = demo.path
    try:
        image = await images.register_file("demo", path, demo.disk_format,
                                           demo.container_format, dict(demo.properties))
    finally:
        if demo.data is not None:
            os.unlink(path)
    log.info("demo image registered", image=image.id, size=image.size)


async def _to_thread(fn: Any, *args: Any) -> Any:
    import trio

    return await trio.to_thread.run_sync(fn, *args)
