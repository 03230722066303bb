"""Images of a project: adding them (idempotent by content hash), finding them, their pixels."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import pixels
from .errors import StoreError
from .records import ImageRecord
from .schema import Image
from .versions import ModelVersionStore

logger = logging.getLogger(__name__)


class ImageStore(ModelVersionStore):
    """The image part of :class:`~.project.ProjectStore`."""

    @staticmethod
    def hash_image(image: np.ndarray) -> str:
        """SHA-256 hex digest of ``image``'s dtype, shape and pixels (its identity in the store)."""
        return pixels.hash_image(image)

    def add_image(
        self,
        image: np.ndarray,
        path: str | os.PathLike | None = None,
        name: str | None = None,
        store_pixels: bool = False,
    ) -> ImageRecord:
        """Add an image to the project, or return the record it already has.

        Parameters
        ----------
        image : np.ndarray
            The pixels as shown, any numeric dtype and shape (``(Y, X)``, ``(Z, Y, X)``, with
            colour / channel axes, ...).
        path : str or path, optional
            File the pixels were read from. Without a readable file the pixels are stored in
            the store (compressed).
        name : str, optional
            Display name; default the file name, else ``image-<hash prefix>``.
        store_pixels : bool
            Store the pixels even when they can be read back from ``path``.

        Returns
        -------
        ImageRecord
            The new record, or the existing one with the same content hash. Adding known pixels
            again from a new ``path`` updates the path (a file that moved).
        """
        array = pixels.as_pixel_array(image)
        digest = pixels.hash_image(array)
        path_str = None if path is None else str(Path(path).expanduser().absolute())
        readable = pixels.is_readable_file(path_str)
        keep_pixels = store_pixels or not readable
        existing = self.find_image(content_hash=digest)
        moved = readable and existing is not None and existing.path != path_str
        if existing is not None and not moved and (existing.has_pixels or not keep_pixels):
            return existing
        blob = pixels.pack_pixels(array) if keep_pixels else None
        try:
            with self._write() as session:
                return self._upsert_image(session, array, digest, path_str, name, blob)
        except StoreError as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
            logger.debug("image %s was added concurrently", digest[:12])
            found = self.find_image(content_hash=digest)
            if found is None:
                raise
            return found

    def images(self) -> list[ImageRecord]:
        """All images of the project, in the order they were added."""
        with self._read() as session:
            rows = session.execute(self._image_query().order_by(Image.id)).all()
            return [ImageRecord.from_row(row, has) for row, has in rows]

    def image(self, image_id: int) -> ImageRecord:
        """The image ``image_id`` of the project; StoreError if there is none."""
        with self._read() as session:
            return self._image_record(session, self._image_row(session, image_id).id)

    def find_image(
        self, content_hash: str | None = None, path: str | os.PathLike | None = None
    ) -> ImageRecord | None:
        """The image with this content hash and/or file path, or None."""
        if content_hash is None and path is None:
            raise ValueError("find_image needs a content_hash or a path.")
        query = self._image_query()
        if content_hash is not None:
            query = query.where(Image.content_hash == content_hash)
        if path is not None:
            query = query.where(Image.path == str(Path(path).expanduser().absolute()))
        with self._read() as session:
            found = session.execute(query.order_by(Image.id).limit(1)).first()
            return None if found is None else ImageRecord.from_row(found[0], found[1])

    def load_pixels(self, image_id: int) -> np.ndarray:
        """The pixels of image ``image_id``: from the store, else read from its file.

        Raises
        ------
        StoreError
            The pixels are not stored and the file is missing or unreadable (the message says
            how to add it again), or the file now holds an image of another shape.
        """
        with self._read() as session:
            row = self._image_row(session, image_id)
            blob = session.scalar(select(Image.pixels).where(Image.id == row.id))
            record = self._image_record(session, row.id)
        if blob is not None:
            return pixels.unpack_pixels(blob)
        return self._read_image_file(record)

    # -- helpers ---------------------------------------------------------------------------------
    def _upsert_image(
        self,
        session: Session,
        array: np.ndarray,
        digest: str,
        path: str | None,
        name: str | None,
        blob: bytes | None,
    ) -> ImageRecord:
        row = session.scalar(
            select(Image).where(Image.project_id == self._project_id, Image.content_hash == digest)
        )
        if row is None:
            default = Path(path).name if path else f"image-{digest[:8]}"
            row = Image(
                project_id=self._project_id,
                name=name or default,
                path=path,
                content_hash=digest,
                shape=[int(s) for s in array.shape],
                dtype=array.dtype.str,
                pixels=blob,
            )
            session.add(row)
            logger.info("added image %r %s to %s", row.name, array.shape, self._where)
        else:
            if path is not None and row.path != path and pixels.is_readable_file(path):
                logger.info("image %d: path %s -> %s", row.id, row.path, path)
                row.path = path
            if blob is not None:
                row.pixels = blob
        session.flush()
        return self._image_record(session, row.id)

    def _image_query(self) -> Select:
        has_pixels = Image.pixels.is_not(None).label("has_pixels")
        return select(Image, has_pixels).where(Image.project_id == self._project_id)

    def _image_record(self, session: Session, image_id: int) -> ImageRecord:
        row, has = session.execute(self._image_query().where(Image.id == image_id)).one()
        return ImageRecord.from_row(row, has)

    def _image_row(self, session: Session, image_id: int, lock: bool = False) -> Image:
        """The image's row; ``lock`` holds a row lock on it until the transaction ends.

        The lock (``SELECT ... FOR NO KEY UPDATE`` on PostgreSQL, ``FOR UPDATE`` on MySQL)
        makes concurrent commits to one image take turns on servers, whose default READ
        COMMITTED isolation would otherwise let two commits each supersede only the rows they
        saw. SQLite write transactions take turns anyway (``BEGIN IMMEDIATE``).
        """
        row = session.get(
            Image, int(image_id), with_for_update={"key_share": True} if lock else None
        )
        if row is None or row.project_id != self._project_id:
            raise StoreError(
                f"There is no image {image_id} in project {self._project_name!r} of "
                f"{self._where}; list them with store.images()."
            )
        return row

    def _read_image_file(self, record: ImageRecord) -> np.ndarray:
        how = (
            "If it moved, add it again from its new place, e.g. "
            "store.add_image(read_image(new_path).data, path=new_path): the same pixels find "
            "the same record and keep its annotations."
        )
        if record.path is None or not Path(record.path).exists():
            raise StoreError(
                f"The file of image {record.id} ({record.name!r}) is no longer at {record.path} "
                f"and its pixels are not stored in the project. {how}"
            )
        try:
            data = pixels.read_path(record.path)
        except Exception as error:  # any reader failure: report the file, keep the cause
            raise StoreError(
                f"Cannot read image {record.id} ({record.name!r}) from {record.path}: {error}. "
                f"{how}"
            ) from error
        if tuple(data.shape) != record.shape:
            raise StoreError(
                f"The file {record.path} of image {record.id} now holds an image of shape "
                f"{data.shape}, not {record.shape}; its annotations do not fit it. Add the new "
                "file as a new image."
            )
        if pixels.hash_image(data) != record.content_hash:
            logger.warning("image %d: %s changed since it was added", record.id, record.path)
        return data
