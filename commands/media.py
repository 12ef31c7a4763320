"""Use case: store an uploaded photo. Bytes are durable in the media store before the
MediaStored event is appended, so no event ever points at a photo that is not there."""
from __future__ import annotations

import asyncio

from commands.context import Actor, CommandContext, Done
from domain.aggregates import media_stream
from domain.events import ImageVariant, MediaRef, MediaStored
from media.images import process_image
from media.store import media_key, new_capability
from streams.event_store import Append


async def store_media(ctx: CommandContext, actor: Actor, data: bytes) -> Done:
    """Validate, strip and re-encode an image, store its variants, record it.
    Raises media.images.MediaError subclasses for bad images (nothing is stored then)."""
    ref = await put_photo(ctx, data)
    done = await ctx.commit(media_stored(ctx, actor, ref))
    return Done(done.token, ref, done.events)


async def put_photo(ctx: CommandContext, data: bytes) -> MediaRef:
    """Validate, strip and re-encode an image and store its variants under a new media
    id; nothing is recorded yet (media_stored)."""
    assert ctx.media is not None
    processed = await asyncio.to_thread(
        process_image, data, max_bytes=ctx.max_upload_bytes, max_pixels=ctx.max_upload_pixels
    )
    media_id = ctx.new_id()
    capability = new_capability()  # media URLs are capabilities: never derivable from the id
    variants: dict[str, ImageVariant] = {}
    for name, image in processed.variants.items():
        variants[name] = ImageVariant(media_key(media_id, image, capability), image.content_type, image.width, image.height)
    await asyncio.gather(
        *(
            ctx.media.put(variants[name].key, image.data, image.content_type)
            for name, image in processed.variants.items()
        )
    )
    return MediaRef(media_id, processed.content_type, processed.width, processed.height, variants)


def media_stored(ctx: CommandContext, actor: Actor, ref: MediaRef) -> Append:
    """The append recording a stored photo as the actor's (store_media's, and the bulk
    seeder's)."""
    assert actor.account_id is not None
    return ctx.prepare(media_stream(ref.media_id), [MediaStored(ref.media_id, actor.account_id, ref)], actor, expected_version=0)
