"""Glance's ``/image/v2/tasks`` (:mod:`novalite.image.tasks`)."""

from __future__ import annotations

from typing import Any

from novalite.api.framework import ApiCall, Reply, Router
from novalite.image.tasks import ImageTasks, task_view

router = Router()


@router.route("POST", "/v2/tasks", rule="image:add_task")
async def create_task(call: ApiCall) -> Reply:
    task, image = await ImageTasks(call.services.images).create(call.ctx, call.body)
    return Reply(201, task_view(task, image),
                 {"Location": f"{call.services.base_url}/image/v2/tasks/{task.id}"})


@router.route("GET", "/v2/tasks", rule="image:get_tasks")
async def list_tasks(call: ApiCall) -> dict[str, Any]:
    found = await ImageTasks(call.services.images).list(call.ctx)
    return {"tasks": [task_view(t, i, full=False) for t, i in found], "first": "/v2/tasks",
            "schema": "/v2/schemas/tasks"}


@router.route("GET", "/v2/tasks/{task_id}", rule="image:get_task")
async def show_task(call: ApiCall) -> dict[str, Any]:
    task, image = await ImageTasks(call.services.images).get(call.ctx,
                                                             call.params["task_id"])
    return task_view(task, image)
