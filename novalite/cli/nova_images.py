"""Image commands of `nova`: upload (file or URL), list, show, delete, download, and
``image-create`` (a server snapshot, novaclient's meaning).

Transfers stream in blocks with a progress bar on stderr (bytes, rate, ETA) on a
terminal, and one summary line otherwise. Ctrl-C during an upload deletes the
half-made image and says so (or, when that fails, says it was left ``queued``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from novalite.cli.nova_app import app, emit, key_value_pairs, session
from novalite.cli.nova_errors import CliError, CommandError, error_from_response
from novalite.cli.nova_find import find_image, find_server
from novalite.cli.output import console, print_properties, print_table

if TYPE_CHECKING:
    import httpx

    from novalite.cli.client import Session

ImageArg = Annotated[str, typer.Argument(help="Name or ID of image.")]
BLOCK = 1 << 20
POLL_INTERVAL = 1.0
QCOW2_MAGIC = b"QFI\xfb"


class Interrupted(CliError):
    """Ctrl-C: the message says what became of the image."""

    title = "Interrupted"
    exit_code = 130


# -- plumbing ---------------------------------------------------------------


def _image_url(s: Session, path: str) -> str:
    return s.endpoint("image") + "/v2" + path


def _send(s: Session, method: str, path: str, *, content: Any = None, json: Any = None,
          headers: dict[str, str] | None = None, stream: bool = False) -> httpx.Response:
    """A Glance call with a body (JSON, or streamed ``content``); errors as `ApiError`."""
    from novalite.cli.client import _httpx

    httpx = _httpx()
    s.authenticate()
    sent = {"X-Auth-Token": str(s._token), **(headers or {})}  # noqa: SLF001
    client = s._client_for(_image_url(s, path))  # noqa: SLF001
    timeout = httpx.Timeout(None, connect=5.0) if content is not None or stream else None
    request = client.build_request(method, _image_url(s, path), headers=sent, content=content,
                                   json=json, **({"timeout": timeout} if timeout else {}))
    try:
        response = client.send(request, stream=stream)
    except httpx.HTTPError as exc:
        raise CommandError(f"{method} {request.url} failed: {exc or type(exc).__name__}") \
            from None
    if response.status_code >= 400:
        if stream:
            response.read()
        raise error_from_response(response)
    return response


class _Meter:
    """A rich progress bar on a terminal; a summary line on stderr otherwise."""

    def __init__(self, what: str, total: int | None) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.progress: Any = None
        self.task: Any = None
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), console=console(stderr=True),
                                     transient=False)
            self.task = self.progress.add_task(what, total=total)
            self.progress.start()

    def advance(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done)

    def set(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.total:
            self.total = total
            if self.progress is not None:
                self.progress.update(self.task, total=total)
        self.advance(done - self.done)

    def close(self, ok: bool = True) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if ok:
            seconds = max(time.monotonic() - self.started, 1e-6)
            mib = self.done / (1 << 20)
            console(stderr=True).print(f"{self.what}: {mib:.1f} MiB in {seconds:.1f} s "
                                       f"({mib / seconds:.1f} MiB/s)")


def _file_blocks(path: Path, meter: _Meter) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            meter.advance(len(block))
            yield block


def _sniff_format(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return "qcow2" if f.read(4) == QCOW2_MAGIC else "raw"
    except OSError:
        return "raw"


def _show_image(image: dict[str, Any]) -> None:
    emit(image, lambda: print_properties(
        {k: v for k, v in image.items() if k not in ("self", "file", "schema")}))


def _cleanup_after_interrupt(s: Session, image_id: str) -> str:
    """Delete an image a Ctrl-C left unfinished; the sentence saying what happened."""
    from novalite.cli.client import Session as FreshSession

    fresh = FreshSession(s.credentials)  # the interrupted connection is unusable
    try:
        current = fresh.image_json("GET", f"/images/{image_id}")
        if current.get("status") == "active":
            return f"image {image_id} had already become active and was kept"
        fresh.image("DELETE", f"/images/{image_id}")
        return f"image {image_id} was deleted; no data was kept"
    except CliError as exc:
        return (f"image {image_id} was left queued (deleting it failed: {exc}); "
                f"remove it with `nova image-delete {image_id}`")
    finally:
        fresh.close()


# -- commands ---------------------------------------------------------------


@app.command("image-upload")
def image_upload(
    name: Annotated[str, typer.Argument(help="Name for the new image.")],
    file: Annotated[Path | None, typer.Option("--file", help="Local file to upload.")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Import from this http(s) URL (web-download).")
    ] = None,
    disk_format: Annotated[
        str | None,
        typer.Option("--disk-format", help="raw, qcow2, iso, ... (default: from the file)."),
    ] = None,
    container_format: Annotated[
        str, typer.Option("--container-format", help="bare, ovf, ...")
    ] = "bare",
    prop: Annotated[
        list[str] | None, typer.Option("--property", help="Image property key=value.")
    ] = None,
    visibility: Annotated[
        str | None, typer.Option("--visibility", help="private, shared, community or public.")
    ] = None,
) -> None:
    """Create an image from a local file (--file) or a URL (--url), showing progress."""
    if (file is None) == (url is None):
        raise CommandError("give exactly one of --file PATH or --url URL")
    if file is not None and not file.is_file() and not file.is_fifo():
        raise CommandError(f"Can't open '{file}': no such file")
    s = session()
    body: dict[str, Any] = {"name": name, "container_format": container_format,
                            "disk_format": disk_format or (_sniff_format(file) if file
                                                           else "raw"),
                            **key_value_pairs(prop or [], "--property")}
    if visibility:
        body["visibility"] = visibility
    image = _send(s, "POST", "/images", json=body).json()
    image_id = image["id"]
    meter: _Meter | None = None
    try:
        if file is not None:
            total = file.stat().st_size if file.is_file() else None
            meter = _Meter(f"Uploading {name}", total)
            _send(s, "PUT", f"/images/{image_id}/file", content=_file_blocks(file, meter),
                  headers={"Content-Type": "application/octet-stream"})
        else:
            meter = _Meter(f"Importing {name}", None)
            _send(s, "POST", f"/images/{image_id}/import",
                  json={"method": {"name": "web-download", "uri": url}})
            _follow_import(s, image_id, meter)
    except KeyboardInterrupt:
        if meter is not None:
            meter.close(ok=False)
        raise Interrupted(f"upload interrupted: {_cleanup_after_interrupt(s, image_id)}") \
            from None
    except CliError:
        if meter is not None:
            meter.close(ok=False)
        raise
    meter.close()
    _show_image(s.image_json("GET", f"/images/{image_id}"))


def _follow_import(s: Session, image_id: str, meter: _Meter) -> None:
    while True:
        image = s.image_json("GET", f"/images/{image_id}")
        total = image.get("os_glance_import_total") or ""
        done = image.get("os_glance_import_bytes") or "0"
        meter.set(int(done) if done.isdigit() else 0, int(total) if total.isdigit() else None)
        if image.get("status") == "active":
            meter.set(int(image.get("size") or 0))
            return
        if image.get("os_glance_failed_import"):
            raise CommandError(f"import of image {image_id} failed: "
                               f"{image.get('os_glance_import_error') or 'unknown error'}; "
                               f"the image is left {image.get('status')}")
        time.sleep(POLL_INTERVAL / 2)


@app.command("image-list")
def image_list() -> None:
    """List images (from the image service, Glance v2)."""
    images = session().image_list()
    columns = [("ID", "id"), ("Name", "name"), ("Status", "status"),
               ("Visibility", "visibility"), ("Disk Format", "disk_format"), ("Size", "size")]
    emit(images, lambda: print_table([c for c, _ in columns],
                                     [[i.get(k) for _, k in columns] for i in images]))


@app.command("image-show")
def image_show(image: ImageArg) -> None:
    """Show an image's details."""
    _show_image(find_image(session(), image))


@app.command("image-delete")
def image_delete(
    images: Annotated[list[str], typer.Argument(help="Name or ID of image(s).")],
) -> None:
    """Delete image(s)."""
    s = session()
    failures = []
    for ref in images:
        try:
            found = find_image(s, ref)
            s.image("DELETE", f"/images/{quote(found['id'], safe='')}")
        except CliError as exc:
            failures.append(f"{ref}: {exc}")
    if failures:
        raise CommandError("Unable to delete the specified image(s): " + "; ".join(failures))


@app.command("image-download")
def image_download(
    image: ImageArg,
    file: Annotated[Path, typer.Option("--file", help="Where to save the image data.")],
) -> None:
    """Save an image's data to a file, verifying its md5 checksum."""
    s = session()
    found = find_image(s, image)
    if found.get("status") != "active":
        raise CommandError(f"image {found['id']} is {found.get('status')}: it has no data")
    tmp = file.with_name(file.name + ".part")
    response = _send(s, "GET", f"/images/{found['id']}/file", stream=True)
    expected = response.headers.get("content-md5") or found.get("checksum")
    meter = _Meter(f"Downloading {found.get('name') or found['id']}", found.get("size"))
    md5 = hashlib.md5(usedforsecurity=False)
    ok = False
    try:
        with open(tmp, "wb") as out:
            for block in response.iter_bytes(BLOCK):
                md5.update(block)
                out.write(block)
                meter.advance(len(block))
        if expected and md5.hexdigest() != expected:
            raise CommandError(f"downloaded data has md5 {md5.hexdigest()} but image "
                               f"{found['id']} has checksum {expected}; nothing was saved")
        os.replace(tmp, file)
        ok = True
    except KeyboardInterrupt:
        raise Interrupted(f"download interrupted; {file} was not written") from None
    except OSError as exc:
        raise CommandError(f"cannot write {file}: {exc.strerror or exc}") from None
    finally:
        response.close()
        meter.close(ok)
        if not ok and tmp.exists():
            tmp.unlink()


@app.command("image-create")
def image_create(
    server: Annotated[str, typer.Argument(help="Name or ID of server.")],
    name: Annotated[str, typer.Argument(help="Name of the snapshot.")],
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", help="Snapshot metadata key=value.")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the image's details.")] = False,
    poll: Annotated[
        bool, typer.Option("--poll", help="Wait until the snapshot is finished.")
    ] = False,
) -> None:
    """Create a new image by taking a snapshot of a running server."""
    s = session()
    target = find_server(s, server)
    body = {"createImage": {"name": name, "metadata": key_value_pairs(metadata or [], "--metadata")}}
    response = s.compute("POST", f"/servers/{target['id']}/action", json=body)
    image_id = None
    if response.content:
        image_id = response.json().get("image_id")
    if not image_id:
        image_id = response.headers.get("location", "").rstrip("/").rsplit("/", 1)[-1]
    if poll:
        _wait_snapshot(s, target["id"], image_id)
    if show or poll:
        _show_image(s.image_json("GET", f"/images/{image_id}"))
    else:
        console(stderr=True).print(f"Snapshot image {image_id} is being created from server "
                                   f"{target['id']}")


def _wait_snapshot(s: Session, server_id: str, image_id: str) -> None:
    shown = None
    try:
        while True:
            found = s.image("GET", f"/images/{image_id}", accept=(404,))
            if found.status_code == 404:
                fault = s.compute_json("GET", f"/servers/{server_id}")["server"].get("fault")
                reason = (fault or {}).get("message") or "the snapshot failed"
                raise CommandError(f"snapshot image {image_id} was deleted: {reason}")
            status = found.json().get("status")
            if status != shown:
                console(stderr=True).print(f"Server snapshotting... image {status}")
                shown = status
            if status == "active":
                return
            time.sleep(POLL_INTERVAL)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped waiting; the snapshot continues on the server: image "
                          f"{image_id}") from None
