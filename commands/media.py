"""Use case: store an uploaded photo. Bytes are durable in the media store before the
MediaStored event is appended, so no event ever points at a photo that is not there."""
from __future__ import annotations

import asyncio

from commands.context import Actor, CommandContext, Done
from domain.aggregates import media_stream
from domain.events import ImageVariant, MediaRef, MediaStored
from media.images import process_image
from media.store import media_key, new_capability


async def store_media(ctx: CommandContext, actor: Actor, data: bytes) -> Done:
    """Validate, strip and re-encode an image, store its variants, record it.
    Raises media.images.MediaError subclasses for bad images (nothing is stored then)."""
    assert actor.account_id is not None and ctx.media is not None
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
    ref = MediaRef(media_id, processed.content_type, processed.width, processed.height, variants)
    done = await ctx.append(
        media_stream(media_id), [MediaStored(media_id, actor.account_id, ref)], actor, expected_version=0
    )
    return Done(done.token, ref, done.events)
