"""Downloads from the Hugging Face Hub (optional ``hub`` extra: ``pip install "vitviz[hub]"``).

Files land in the standard Hugging Face cache (``$HF_HOME`` / ``$HF_HUB_CACHE``, by default
``~/.cache/huggingface/hub``) and are shared with ``transformers`` and ``timm``. A file already in the cache is used
without any network access; ``HF_HUB_OFFLINE=1`` forbids network access altogether. Every failure is raised as
:class:`~vitviz.errors.ModelDownloadError` with a one-line reason.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

from ..errors import LoadCancelled, ModelDownloadError

__all__ = ["ProgressHook", "hub_available", "is_offline", "download", "cache_dir"]

ProgressHook = Callable[[int, int], None]  # (bytes done, bytes total; 0 when unknown), called per file
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0
INSTALL_HINT = 'install the optional extra: pip install "vitviz[hub]"'
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_available() -> bool:
    """Whether ``huggingface_hub`` can be imported."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return False
    return True


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, read now rather than at import time."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The Hugging Face hub cache in use."""
    if override:
        return Path(override)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(home) / "hub"


def _import_hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ModelDownloadError(f"downloading pretrained models needs huggingface_hub: {INSTALL_HINT}") from exc
    return huggingface_hub


def _error_class(hub: Any, name: str) -> type[BaseException]:
    """An exception class of huggingface_hub, wherever this version keeps it (never-raised stand-in if absent)."""
    import importlib

    for module in ("errors", "utils"):
        try:  # submodules of huggingface_hub are imported lazily: import them explicitly
            mod = importlib.import_module(f"{hub.__name__}.{module}")
        except ImportError:
            continue
        cls = getattr(mod, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return cls
    return type(f"_Missing{name}", (Exception,), {})


def _probe(endpoint: str) -> str | None:
    """A quick TCP check of the endpoint; the reason when it is unreachable, None when reachable or unknown.

    Skipped behind a proxy (the proxy resolves the name), where ``huggingface_hub``'s own error handling applies.
    """
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    url = urlparse(endpoint)
    host = url.hostname
    if not host:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except socket.gaierror:
        return f"cannot resolve {host}"
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc.strerror or exc.__class__.__name__})"


def _hook_bar(progress: ProgressHook) -> type:
    """A tqdm class that reports to ``progress`` instead of drawing."""
    from tqdm.std import tqdm

    class _HookBar(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            self._report()

        def _report(self) -> None:
            try:
                progress(int(self.n), int(self.total or 0))
            except LoadCancelled:  # the hook's way to stop the download (huggingface_hub keeps the partial file)
                raise
            except Exception:  # a broken hook must not break the download
                pass

        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            self._report()
            return result

    return _HookBar


def download(
    repo_id: str,
    files: Sequence[str | Sequence[str]],
    optional: Sequence[str] = (),
    revision: str | None = None,
    progress: ProgressHook | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> Path:
    """Fetch ``files`` of a Hub model repository (or find them in the cache); returns their local folder.

    Each entry of ``files`` is a file name or a sequence of alternatives, the first one the repository has is used
    (e.g. ``("model.safetensors", "pytorch_model.bin")``). ``optional`` files are fetched when present. ``progress``
    receives (bytes done, bytes total) while a file downloads; without it huggingface_hub draws its tqdm bar.
    ``progress`` may raise :class:`~vitviz.errors.LoadCancelled` to stop the download; it propagates unchanged.
    """
    hub = _import_hub()
    import inspect

    local_missing = _error_class(hub, "LocalEntryNotFoundError")
    entry_missing = _error_class(hub, "EntryNotFoundError")
    repo_missing = _error_class(hub, "RepositoryNotFoundError")
    gated = _error_class(hub, "GatedRepoError")
    rev_missing = _error_class(hub, "RevisionNotFoundError")
    offline_err = _error_class(hub, "OfflineModeIsEnabled")
    http_err = _error_class(hub, "HfHubHTTPError")
    endpoint = _endpoint()
    where = f"the Hugging Face Hub ({endpoint})" if endpoint != DEFAULT_ENDPOINT else "the Hugging Face Hub"
    kwargs: dict[str, Any] = {"revision": revision, "cache_dir": str(cache_dir(cache))}
    if endpoint != DEFAULT_ENDPOINT:
        kwargs["endpoint"] = endpoint
    accepts_tqdm = "tqdm_class" in inspect.signature(hub.hf_hub_download).parameters
    cache_hint = f"the files are then cached in {cache_dir(cache)}"
    entries = [[e] if isinstance(e, str) else list(e) for e in files]

    def fail(filename: str, reason: str) -> ModelDownloadError:
        return ModelDownloadError(f"cannot download {repo_id}/{filename} from {where}: {reason}")

    def cached(filename: str) -> Path | None:
        try:
            return Path(hub.hf_hub_download(repo_id, filename, local_files_only=True, **kwargs))
        except local_missing:
            return None
        except entry_missing:  # known to be absent from the repository
            return None
        except (ValueError, OSError) as exc:
            raise fail(filename, f"the local cache is unusable ({exc})") from exc

    def fetch(filename: str) -> Path | None:
        """Download ``filename`` (or confirm the cached copy is current); None when the repository has no such file."""
        extra: dict[str, Any] = {}
        if progress is not None and accepts_tqdm:
            extra["tqdm_class"] = _hook_bar(progress)
        try:
            return Path(hub.hf_hub_download(repo_id, filename, **kwargs, **extra))
        except gated as exc:
            raise fail(filename, "the repository is gated; accept its licence on the Hub and log in (hf auth login)") from exc
        except repo_missing as exc:
            raise fail(filename, "no such repository (or it is private)") from exc
        except rev_missing as exc:
            raise fail(filename, f"no revision {revision!r} in the repository") from exc
        except offline_err as exc:
            raise fail(filename, "offline mode is on (HF_HUB_OFFLINE=1) and the file is not in the local cache") from exc
        except local_missing as exc:  # raised by huggingface_hub when the connection fails
            raise fail(
                filename, f"no network connection; connect to the internet once ({cache_hint}), or pass a local model folder"
            ) from exc
        except entry_missing:
            return None
        except http_err as exc:
            raise fail(filename, f"HTTP error ({str(exc).splitlines()[0]})") from exc
        except (ConnectionError, TimeoutError) as exc:
            raise fail(filename, f"no network connection ({exc})") from exc
        except OSError as exc:
            raise fail(filename, f"{exc.__class__.__name__}: {exc}") from exc

    def same_folder(paths: list[Path]) -> Path:
        folders = {p.parent for p in paths}
        if len(folders) != 1:  # files of different snapshots: should not happen within one revision
            raise ModelDownloadError(f"{repo_id}: the files of one model resolved to different cache folders")
        return folders.pop()

    # 1. Everything already cached: no network access at all.
    local: list[Path] = []
    for choices in entries:
        found = next((p for p in map(cached, choices) if p is not None), None)
        if found is None:
            break
        local.append(found)
    else:
        local += [p for p in map(cached, optional) if p is not None]
        try:
            return same_folder(local)
        except ModelDownloadError:
            pass  # a partial older snapshot: fetch the current one below

    # 2. Download (all files, so that they come from one snapshot; cached blobs are not fetched again).
    first = next((c[0] for c, p in zip(entries, local + [None] * len(entries)) if p is None), entries[0][0])
    if is_offline():
        raise fail(
            first,
            "offline mode is on (HF_HUB_OFFLINE=1) and the file is not in the local cache; unset HF_HUB_OFFLINE "
            f"and connect to the internet once ({cache_hint}), or pass a local model folder",
        )
    reason = _probe(endpoint)
    if reason:
        raise fail(
            first, f"no network connection ({reason}); connect to the internet once ({cache_hint}), or pass a local model folder"
        )
    paths: list[Path] = []
    for choices in entries:
        for filename in choices:
            path = fetch(filename)
            if path is not None:
                paths.append(path)
                break
        else:
            raise ModelDownloadError(f"cannot download {repo_id} from {where}: the repository has none of {', '.join(choices)}")
    for filename in optional:
        try:
            path = fetch(filename)
        except ModelDownloadError:
            continue
        if path is not None:
            paths.append(path)
    return same_folder(paths)
