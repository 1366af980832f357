"""What a first start creates: admin credentials file, Nova's default flavors, a demo image."""

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


def write_clouds_yaml(cfg: Config, generated_password: str | None) -> str | None:
    """Write the ``novalite`` cloud entry when the admin password is known to us now."""
    password = cfg.identity.admin_password or generated_password
    path = clouds_yaml_path(cfg)
    if not password:
        return path if os.path.exists(path) else None
    import yaml

    doc: dict[str, Any] = {"clouds": {"novalite": {
        "auth": {"auth_url": f"{cfg.public_url}/identity", "username": "admin",
                 "password": password, "project_name": "admin",
                 "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": cfg.identity.region, "identity_api_version": 3,
        "interface": "public"}}}
    os.makedirs(cfg.state_path, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cfg.state_path, prefix=".clouds-")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


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
