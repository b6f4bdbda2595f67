"""The gallery of a ``vitviz analyze`` run (``vitviz browse DIR``, File → Open results…): every image as a thumbnail
with one overlay, sorted, filtered and searched. The data and the drawing are :mod:`vitviz.gallery` (no Qt);
here are the thumbnail thread, the list model, the delegate that paints an item and the window."""

from __future__ import annotations

from .list_model import GalleryListModel
from .thumbnails import ThumbnailLoader
from .window import BrowseWindow

__all__ = ["BrowseWindow", "GalleryListModel", "ThumbnailLoader"]
