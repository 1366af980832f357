"""Glance's v2 tasks (``/v2/tasks``): an ``import`` task makes an image from
``image_properties`` and fetches ``import_from`` into it with the web-download import.

As Glance's current defaults, tasks are an admin API. The import URI is checked when
the task is created (``[import_filtering_opts]``, and the host must resolve): a URI
that cannot pass is a 400 at once, as newer Glance answers, not a task that fails
later. A task's status follows its image: ``processing`` while the import runs,
``success`` (``result.image_id``) once the image is active, ``failure`` (with the
import's error as ``message``) if it failed or the image is gone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import col, select

from novalite.context import AuthContext
from novalite.db.models import Image, ImageTask
from novalite.exceptions import BadRequest, NotFound
from novalite.image.fields import isotime
from novalite.image.service import ImageService
from novalite.image.web_download import check_import_uri

TASK_TYPES = ("import",)
#: How long a finished task is kept, as Glance's ``task_time_to_live`` (hours).
TIME_TO_LIVE = dt.timedelta(hours=48)


def _check(body: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise BadRequest("Task body must be a JSON object")
    extra = sorted(set(body) - {"type", "input"})
    if extra:
        raise BadRequest(f"Attribute '{extra[0]}' is read-only.")
    kind, given = body.get("type"), body.get("input")
    if kind not in TASK_TYPES:
        raise BadRequest(f"Invalid type value: {kind}")
    if not isinstance(given, dict):
        raise BadRequest("Input must be a JSON object")
    for key in ("import_from", "import_from_format", "image_properties"):
        if key not in given:
            raise BadRequest(f"Input does not contain '{key}' field")
    props = given["image_properties"]
    if not isinstance(props, dict):
        raise BadRequest("image_properties must be a JSON object")
    for key in ("container_format", "disk_format"):
        if key not in props:
            raise BadRequest(f"Invalid image properties: '{key}' is required")
    if not isinstance(given["import_from"], str) or not given["import_from"]:
        raise BadRequest("import_from must be a URI")
    return str(kind), given


class ImageTasks:
    """Tasks on the image service's database; the imports run in its nursery."""

    def __init__(self, images: ImageService) -> None:
        self.images = images

    async def create(self, ctx: AuthContext, body: Any) -> tuple[ImageTask, Image | None]:
        kind, given = _check(body)
        await check_import_uri(given["import_from"], self.images.cfg.import_filtering_opts)
        image = await self.images.create(ctx, dict(given["image_properties"]))
        try:
            await self.images.import_image(ctx, image.id, {"method": {
                "name": "web-download", "uri": given["import_from"]}})
        except BaseException:
            await self.images.delete(ctx, image.id)
            raise
        task = ImageTask(type=kind, owner=ctx.project_id, input=given, image_id=image.id)

        def work(s: Any) -> ImageTask:
            s.add(task)
            s.flush()
            return task

        return await self.images.db.write(work), await self._image(task.image_id)

    async def _image(self, image_id: str) -> Image | None:
        return await self.images.db.read(lambda s: s.get(Image, image_id))

    async def get(self, ctx: AuthContext, task_id: str) -> tuple[ImageTask, Image | None]:
        task = await self.images.db.read(lambda s: s.get(ImageTask, task_id))
        if task is None or not (ctx.is_admin or task.owner == ctx.project_id):
            raise NotFound(f"Task with the given ID {task_id} could not be found")
        return task, await self._image(task.image_id)

    async def list(self, ctx: AuthContext) -> list[tuple[ImageTask, Image | None]]:
        def work(s: Any) -> list[tuple[ImageTask, Image | None]]:
            q = select(ImageTask).order_by(col(ImageTask.created_at).desc())
            if not ctx.is_admin:
                q = q.where(ImageTask.owner == ctx.project_id)
            return [(t, s.get(Image, t.image_id)) for t in s.exec(q).all()]

        return await self.images.db.read(work)


def task_view(task: ImageTask, image: Image | None, *, full: bool = True) -> dict[str, Any]:
    """Glance's task body; the status is the image's import's."""
    status, message, result, finished = "processing", "", None, None
    if image is None:
        status, message = "failure", "The image made by this task was deleted"
    elif image.status == "active":
        status, result, finished = "success", {"image_id": image.id}, image.updated_at
    elif image.properties.get("os_glance_failed_import"):
        status, finished = "failure", image.updated_at
        message = str(image.properties.get("os_glance_import_error") or "The import failed")
    elif image.status not in ("importing", "queued"):  # queued: a moment, between the two
        status, finished = "failure", image.updated_at
        message = f"The image is {image.status}; the import did not complete"
    out: dict[str, Any] = {
        "id": task.id, "type": task.type, "status": status, "owner": task.owner,
        "expires_at": isotime(finished + TIME_TO_LIVE) if finished else None,
        "created_at": isotime(task.created_at),
        "updated_at": isotime(finished or task.created_at),
        "self": f"/v2/tasks/{task.id}", "schema": "/v2/schemas/task"}
    if full:
        out.update(input=task.input, result=result, message=message)
    return out
