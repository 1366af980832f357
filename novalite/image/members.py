"""Image sharing, as Glance v2 has it: members of a ``shared`` image.

The owner (or an admin) adds a project as a member of one of its ``shared`` images;
the member sees the image at once (``GET /v2/images/{id}``, and it can boot it), and
answers with a status: ``pending`` (the start), ``accepted`` (the image appears in
the member's image list) or ``rejected``. Only the member itself (or an admin)
changes its status; only the owner (or an admin) adds and removes members. A member
sees its own membership, never the other members. Images of any other visibility
have no members (403, as Glance answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from novalite.context import AuthContext
from novalite.db.engine import Database
from novalite.db.models import Image, ImageMember, utcnow
from novalite.exceptions import BadRequest, Conflict, Forbidden, NotFound, NovaliteError
from novalite.image.fields import isotime

MEMBER_STATUSES = ("pending", "accepted", "rejected")
#: Glance's ``image_member_quota`` default.
MEMBER_LIMIT = 128


class MemberLimitExceeded(NovaliteError):
    """An image has as many members as it may have."""

    code = 413
    title = "overLimit"


def member_view(member: ImageMember) -> dict[str, Any]:
    return {"member_id": member.member_id, "image_id": member.image_id,
            "status": member.status, "created_at": isotime(member.created_at),
            "updated_at": isotime(member.updated_at), "schema": "/v2/schemas/member"}


def _is_owner(image: Image, ctx: AuthContext | None) -> bool:
    return ctx is None or ctx.is_admin or image.owner == ctx.project_id


def _shared_only(image: Image) -> None:
    if image.visibility != "shared":
        raise Forbidden(f"Error fetching members of image {image.id}: Only shared images "
                        "have members.")


class ImageMembers:
    """The member calls of :class:`~novalite.image.service.ImageService` (a mixin: the
    image service looks images up with the caller's view, members included)."""

    db: Database

    async def get(self, ctx: AuthContext | None, image_id: str) -> Image:
        raise NotImplementedError  # ImageService.get

    async def membership(self, project_id: str, image_ids: list[str] | None = None
                         ) -> dict[str, str]:
        """{image id: status} of the images shared with ``project_id`` (of ``image_ids``)."""
        def work(s: Session) -> dict[str, str]:
            q = select(ImageMember).where(ImageMember.member_id == project_id)
            if image_ids is not None:
                q = q.where(col(ImageMember.image_id).in_(image_ids))
            return {m.image_id: m.status for m in s.exec(q).all()}

        return await self.db.read(work)

    async def _member(self, image: Image, member_id: str) -> ImageMember:
        found = await self.db.read(lambda s: s.get(ImageMember, (image.id, member_id)))
        if found is None:
            raise NotFound(f"{member_id} not found in the member list of the image "
                           f"{image.id}.")
        return found

    async def add_member(self, ctx: AuthContext | None, image_id: str, body: Any
                         ) -> ImageMember:
        member_id = body.get("member") if isinstance(body, Mapping) else None
        if not isinstance(body, Mapping) or "member" not in body:
            raise BadRequest("Member to be added not specified")
        if not member_id or not isinstance(member_id, str):
            raise BadRequest("Member can't be empty")
        if len(member_id) > 255:
            raise BadRequest("Member id is at most 255 characters")
        image = await self.get(ctx, image_id)
        if not _is_owner(image, ctx):
            raise Forbidden(f"Not allowed to create members for image {image_id}.")
        _shared_only(image)

        def work(s: Session) -> ImageMember:
            if s.get(ImageMember, (image_id, member_id)) is not None:
                raise Conflict(f"Member {member_id} is duplicated for image {image_id}")
            count = len(s.exec(select(ImageMember.member_id).where(
                ImageMember.image_id == image_id)).all())
            if count >= MEMBER_LIMIT:
                raise MemberLimitExceeded(
                    f"Image member limit exceeded for image {image_id}: attempted: "
                    f"{count + 1}, maximum: {MEMBER_LIMIT}")
            member = ImageMember(image_id=image_id, member_id=member_id)
            s.add(member)
            return member

        return await self.db.write(work)

    async def list_members(self, ctx: AuthContext | None, image_id: str
                           ) -> list[ImageMember]:
        """All members for the owner and admins; a member sees only its own membership."""
        image = await self.get(ctx, image_id)
        _shared_only(image)

        def work(s: Session) -> list[ImageMember]:
            q = select(ImageMember).where(ImageMember.image_id == image_id)
            if not _is_owner(image, ctx):
                assert ctx is not None
                q = q.where(ImageMember.member_id == ctx.project_id)
            return list(s.exec(q.order_by(col(ImageMember.created_at))).all())

        return await self.db.read(work)

    async def show_member(self, ctx: AuthContext | None, image_id: str, member_id: str
                          ) -> ImageMember:
        image = await self.get(ctx, image_id)
        if image.visibility != "shared" or not (
                _is_owner(image, ctx) or (ctx is not None and ctx.project_id == member_id)):
            # Glance answers 404 here, not 403: it does not reveal other memberships
            raise NotFound(f"{member_id} not found in the member list of the image "
                           f"{image_id}.")
        return await self._member(image, member_id)

    async def update_member(self, ctx: AuthContext | None, image_id: str, member_id: str,
                            body: Any) -> ImageMember:
        """The member answers: pending, accepted or rejected (only the member, or admin)."""
        if not isinstance(body, Mapping) or "status" not in body:
            raise BadRequest("Status not specified")
        status = body["status"]
        image = await self.get(ctx, image_id)
        _shared_only(image)
        await self._member(image, member_id)
        if ctx is not None and not ctx.is_admin and ctx.project_id != member_id:
            raise Forbidden(f"Not allowed to update members for image {image_id}.")
        if status not in MEMBER_STATUSES:
            raise BadRequest(f"Incorrect request: Invalid status {status!r}: it must be one "
                             f"of {', '.join(MEMBER_STATUSES)}")

        def work(s: Session) -> ImageMember:
            row = s.get(ImageMember, (image_id, member_id))
            if row is None:
                raise NotFound(f"{member_id} not found in the member list of the image "
                               f"{image_id}.")
            row.status = status
            row.updated_at = utcnow()
            s.add(row)
            return row

        return await self.db.write(work)

    async def remove_member(self, ctx: AuthContext | None, image_id: str, member_id: str
                            ) -> None:
        image = await self.get(ctx, image_id)
        _shared_only(image)
        await self._member(image, member_id)
        if not _is_owner(image, ctx):
            raise Forbidden(f"Not allowed to delete members for image {image_id}.")

        def work(s: Session) -> None:
            row = s.get(ImageMember, (image_id, member_id))
            if row is not None:
                s.delete(row)

        await self.db.write(work)
