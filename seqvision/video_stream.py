"""One sequential pass over a video, converting only the frames asked for (long videos, timelines,
per-frame classification): nothing is held beyond the frame being yielded."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from seqvision.video import VideoError, _metadata, _open, _to_rgb


class VideoStream:
    """``for index, image in VideoStream(path, wanted, size)``: every decodable frame in order;
    ``image`` is RGB uint8 ``[S, S, 3]`` when ``wanted(index)`` (else None, and the frame is only
    grabbed, not converted). ``fps`` (0.0 when unknown) and ``metadata_frames`` (the container's
    claim) are read on opening; ``decoded`` is the count after iteration. Raises ``VideoError``."""

    def __init__(self, path: str | Path, wanted: Callable[[int], bool], size: int | None = None):
        self.path = Path(path)
        self.wanted = wanted
        self.size = (size, size) if size else None
        self._cap = _open(self.path)
        self.metadata_frames, self.fps = _metadata(self._cap)
        self.decoded = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
        import cv2

        cap, index = self._cap, 0
        try:
            while cap.grab():
                image = None
                if self.wanted(index):
                    ok, frame = cap.retrieve()
                    if not ok or frame is None:
                        break  # decoded but not convertible: a plain cap.read() stops here too
                    image = _to_rgb(frame, self.size)
                index += 1
                self.decoded = index
                yield index - 1, image
        except cv2.error as error:
            raise VideoError(self.path, f"OpenCV failed while decoding: {error.err or error}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._cap.release()
