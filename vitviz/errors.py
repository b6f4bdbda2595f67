"""Errors that carry a message meant for the user (shown in the window, printed by the command line)."""


class VitvizError(Exception):
    """Base class: ``str(error)`` is a complete, one-line explanation for the user."""


class ImageLoadError(VitvizError):
    """An image file could not be read or is refused."""


class CheckpointError(VitvizError):
    """A model checkpoint could not be loaded or is refused."""


class ModelDownloadError(VitvizError):
    """A pretrained model could not be downloaded."""


class LoadCancelled(VitvizError):
    """Loading a model (typically a download) was stopped on request, e.g. because the window is closing."""
