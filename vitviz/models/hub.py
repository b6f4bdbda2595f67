"""Downloads from the Hugging Face Hub (optional ``hub`` extra: ``pip install "vitviz[hub]"``).

Files land in the standard Hugging Face cache (``$HF_HOME`` / ``$HF_HUB_CACHE``, by default
``~/.cache/huggingface/hub``) and are shared with ``transformers`` and ``timm``. A file already in the cache is used
without any network access; ``HF_HUB_OFFLINE=1`` forbids network access altogether. Every failure is raised as
:class:`~vitviz.errors.ModelDownloadError` with a one-line reason.

Each downloaded file is checked against the checksum the Hub gave for it (the sha256 of a large file, the git id of a
small one, which name its blob in the cache): a damaged file is removed and refused by name, never loaded. A partial
file never enters the cache (``huggingface_hub`` writes to a temporary file, resumes it with a ``Range`` request after
a dropped connection, and moves it into place only when complete).

With a ``progress`` hook the transfer runs on a helper thread while the calling thread relays progress every
:data:`POLL_S` seconds. The hook raising :class:`~vitviz.errors.LoadCancelled` therefore stops waiting at once, even
though ``huggingface_hub`` reports progress only every 10 MB; the abandoned transfer stops at its next chunk.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

from ..errors import LoadCancelled, ModelDownloadError

__all__ = ["ProgressHook", "hub_available", "is_offline", "download", "cached_folder", "remote_size", "cache_dir"]

ProgressHook = Callable[[int, int], None]  # (bytes done, bytes total; 0 when unknown), called per file
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0
POLL_S = 0.1  # how often the progress hook is called (and may cancel) while a transfer runs
SIZE_TIMEOUT_S = 3.0  # HEAD requests of remote_size
TOKEN_HINT = "log in with 'hf auth login' or set HF_TOKEN"
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


class _Transfer:
    """The file being fetched: bytes done and total (written by the download thread), and a cancel flag."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self.cancelled = threading.Event()


def _hook_bar(transfer: _Transfer) -> type:
    """A tqdm class that records progress in ``transfer`` instead of drawing, and stops a cancelled transfer."""
    from tqdm.std import tqdm

    class _HookBar(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            self._record()

        def _record(self) -> None:
            transfer.done, transfer.total = int(self.n), int(self.total or 0)
            if transfer.cancelled.is_set():  # stops huggingface_hub's transfer; its temporary file is deleted
                raise LoadCancelled("the download was cancelled")

        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            self._record()
            return result

    return _HookBar


def _run(fn: Callable[[], Any], progress: ProgressHook | None, transfer: _Transfer) -> Any:
    """``fn()``; with a hook, on a helper thread while this thread calls ``progress`` every POLL_S seconds.

    The hook raising :class:`LoadCancelled` returns at once (the helper thread is told to stop at its next chunk);
    any other exception of the hook is ignored, so a broken hook cannot break a download.
    """
    if progress is None:
        return fn()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="vitviz-download", daemon=True)
    thread.start()
    while True:
        thread.join(POLL_S)
        try:
            progress(transfer.done, transfer.total)
        except LoadCancelled:
            transfer.cancelled.set()
            raise
        except Exception:  # noqa: BLE001 - a broken hook must not break the download
            pass
        if not thread.is_alive():
            break
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _git_sha1(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_problem(path: Path) -> str | None:
    """Why a cached file does not match the checksum the Hub sent for it (its blob's name), or None.

    Large (LFS) files are named by their sha256, small ones by their git blob id. Without symbolic links (a Windows
    cache) the blob name is not at hand and nothing is checked.
    """
    blob = Path(os.path.realpath(path))
    name = blob.name
    if re.fullmatch(r"[0-9a-f]{64}", name):
        kind, actual = "sha256", _sha256(blob)
    elif re.fullmatch(r"[0-9a-f]{40}", name):
        kind, actual = "git checksum", _git_sha1(blob)
    else:
        return None
    if actual == name:
        return None
    for p in {path, blob}:  # neither the damaged blob nor its snapshot link may be found again
        try:
            p.unlink()
        except OSError:
            pass
    return (f"the downloaded file is damaged (its {kind} differs from the Hub's); it was removed from the cache, "
            "try again")


def _is_network_error(exc: BaseException) -> bool:
    """A transport failure of the HTTP library huggingface_hub uses (httpx, httpx2 or requests)."""
    return any(c.__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3") for c in type(exc).__mro__)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _http_status(exc: BaseException) -> tuple[int | None, bool]:
    """The HTTP status of a huggingface_hub error and whether the request carried a token."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    try:
        sent_token = bool(response.request.headers.get("authorization"))  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - no request at hand
        sent_token = False
    return status, sent_token


class _Session:
    """What one download of a repository needs: huggingface_hub, its error classes, the endpoint and cache."""

    def __init__(self, repo_id: str, revision: str | None, cache: str | os.PathLike[str] | None) -> None:
        self.hub = hub = _import_hub()
        self.repo_id, self.revision = repo_id, revision
        self.local_missing = _error_class(hub, "LocalEntryNotFoundError")
        self.entry_missing = _error_class(hub, "EntryNotFoundError")
        self.repo_missing = _error_class(hub, "RepositoryNotFoundError")
        self.gated = _error_class(hub, "GatedRepoError")
        self.rev_missing = _error_class(hub, "RevisionNotFoundError")
        self.offline_err = _error_class(hub, "OfflineModeIsEnabled")
        self.http_err = _error_class(hub, "HfHubHTTPError")
        self.metadata_err = _error_class(hub, "FileMetadataError")
        self.endpoint = _endpoint()
        custom = self.endpoint != DEFAULT_ENDPOINT
        self.where = f"the Hugging Face Hub ({self.endpoint})" if custom else "the Hugging Face Hub"
        self.cache = cache_dir(cache)
        self.kwargs: dict[str, Any] = {"revision": revision, "cache_dir": str(self.cache)}
        if self.endpoint != DEFAULT_ENDPOINT:
            self.kwargs["endpoint"] = self.endpoint  # read now: huggingface_hub reads HF_ENDPOINT only at import
        self.cache_hint = f"the files are then cached in {self.cache}"

    def fail(self, filename: str, reason: str) -> ModelDownloadError:
        return ModelDownloadError(f"cannot download {self.repo_id}/{filename} from {self.where}: {reason}")

    def cached(self, filename: str) -> Path | None:
        """The cached copy of ``filename``, without any network access; None when not cached."""
        try:
            return Path(self.hub.hf_hub_download(self.repo_id, filename, local_files_only=True, **self.kwargs))
        except self.local_missing:
            return None
        except self.entry_missing:  # known to be absent from the repository
            return None
        except (ValueError, OSError) as exc:
            raise self.fail(filename, f"the local cache is unusable ({exc})") from exc

    def reason(self, exc: BaseException) -> str | None:
        """The one-line reason for a failed hf_hub_download; None when the repository has no such file."""
        if isinstance(exc, self.gated):
            return f"the repository is gated; accept its licence on the Hub, then {TOKEN_HINT}"
        if isinstance(exc, self.repo_missing):
            status, sent_token = _http_status(exc)
            if status == 401 and not sent_token:
                return f"repository not found, or it is private or gated and needs a token: {TOKEN_HINT}"
            if status == 401:
                return f"repository not found, or the token has no access to it: {TOKEN_HINT}"
            return "repository not found (check its name)"
        if isinstance(exc, self.rev_missing):
            return f"no revision {self.revision!r} in the repository"
        if isinstance(exc, self.offline_err):
            return "offline mode is on (HF_HUB_OFFLINE=1) and the file is not in the local cache"
        if isinstance(exc, self.local_missing):  # huggingface_hub's answer when the HEAD request failed
            cause = exc.__cause__
            if isinstance(cause, self.metadata_err):  # an answer, but not the Hub's
                return (f"the server does not answer like the Hugging Face Hub ({_first_line(cause)[:120]}); "
                        "check HF_ENDPOINT and any proxy settings")
            if isinstance(cause, self.http_err) and (_http_status(cause)[0] or 0) >= 500:
                return f"the Hub is unavailable (HTTP {_http_status(cause)[0]}); try again later"
            return (f"no network connection; connect to the internet once ({self.cache_hint}), "
                    "or pass a local model folder")
        if isinstance(exc, self.entry_missing):
            return None
        if isinstance(exc, self.http_err):
            status, sent_token = _http_status(exc)
            if status == 401:
                return (f"the Hub refused the token (401); {TOKEN_HINT}" if sent_token
                        else f"the repository needs a token (401): {TOKEN_HINT}")
            return f"HTTP error ({_first_line(exc)})"
        if _is_network_error(exc) or isinstance(exc, (ConnectionError, TimeoutError)):
            return f"the connection failed ({_first_line(exc)}); no partial file was kept, try again"
        if isinstance(exc, OSError):
            if "consistency check failed" in str(exc).lower():
                return f"the transfer was incomplete ({_first_line(exc)}); no partial file was kept, try again"
            return f"{exc.__class__.__name__}: {_first_line(exc)}"
        raise exc  # not a download failure: a bug, or LoadCancelled

    def fetch(self, filename: str, progress: ProgressHook | None) -> Path | None:
        """Download ``filename`` (or confirm the cached copy is current) and check it; None when the repository has
        no such file."""
        transfer = _Transfer()
        extra: dict[str, Any] = {}
        if progress is not None and "tqdm_class" in _signature(self.hub.hf_hub_download):
            extra["tqdm_class"] = _hook_bar(transfer)

        def get() -> tuple[Path, str | None]:
            path = Path(self.hub.hf_hub_download(self.repo_id, filename, **self.kwargs, **extra))
            return path, _checksum_problem(path)

        try:
            path, problem = _run(get, progress, transfer)
        except LoadCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - translated to a one-line reason, or re-raised
            why = self.reason(exc)
            if why is None:
                return None
            raise self.fail(filename, why) from exc
        if problem:
            raise self.fail(filename, problem)
        return path


def _signature(fn: Callable[..., Any]) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)


def _choices(files: Sequence[str | Sequence[str]]) -> list[list[str]]:
    return [[e] if isinstance(e, str) else list(e) for e in files]


def _same_folder(repo_id: str, paths: list[Path]) -> Path:
    folders = {p.parent for p in paths}
    if len(folders) != 1:  # files of different snapshots: should not happen within one revision
        raise ModelDownloadError(f"{repo_id}: the files of one model resolved to different cache folders")
    return folders.pop()


def _find_cached(
    session: _Session | _DiskCache, files: Sequence[str | Sequence[str]], optional: Sequence[str]
) -> tuple[Path | None, str]:
    """(the cache folder holding all files of one snapshot or None, the first file that is missing)."""
    entries = _choices(files)
    local: list[Path] = []
    for choices in entries:
        found = next((p for p in map(session.cached, choices) if p is not None), None)
        if found is None:
            return None, choices[0]
        local.append(found)
    local += [p for p in map(session.cached, optional) if p is not None]
    try:
        return _same_folder(session.repo_id, local), entries[0][0]
    except ModelDownloadError:
        return None, entries[0][0]  # a partial older snapshot


class _DiskCache:
    """Looks files up in the local Hub cache from its documented layout alone: ``models--ORG--NAME/refs/REV``
    holds a commit, ``snapshots/COMMIT/FILE`` the file. No Hub client: building one imports an HTTP stack, about
    half a second, which the app cannot spend on its UI thread (e.g. to say whether a model is downloaded)."""

    def __init__(self, repo_id: str, revision: str | None, cache: str | os.PathLike[str] | None) -> None:
        self.repo_id = repo_id
        self.root = cache_dir(cache) / f"models--{repo_id.replace('/', '--')}"
        self.revision = revision or "main"

    def cached(self, filename: str) -> Path | None:
        commit = self.revision
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            try:
                commit = (self.root / "refs" / commit).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return None
        path = self.root / "snapshots" / commit / filename
        return path if path.is_file() else None


def cached_folder(
    repo_id: str,
    files: Sequence[str | Sequence[str]],
    optional: Sequence[str] = (),
    revision: str | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The cache folder holding all ``files`` of one snapshot (see :func:`download`), or None; no network access,
    and no Hub client (fast enough for a UI thread)."""
    return _find_cached(_DiskCache(repo_id, revision, cache), files, optional)[0]


def remote_size(
    repo_id: str,
    files: Sequence[str | Sequence[str]],
    revision: str | None = None,
    timeout: float = SIZE_TIMEOUT_S,
) -> int | None:
    """Total size in bytes of ``files`` on the Hub (the first existing alternative of each), from HEAD requests.

    None when it cannot be known quickly: offline, unreachable, slow (``timeout`` seconds per request), or refused.
    """
    if is_offline():
        return None
    try:
        hub = _import_hub()
        endpoint = _endpoint()
        if _probe(endpoint):
            return None
        entry_missing = _error_class(hub, "EntryNotFoundError")
        url_kwargs = {"endpoint": endpoint} if "endpoint" in _signature(hub.hf_hub_url) else {}
        total = 0
        for choices in _choices(files):
            for filename in choices:
                url = hub.hf_hub_url(repo_id, filename, revision=revision, **url_kwargs)
                try:
                    meta = hub.get_hf_file_metadata(url, timeout=timeout)
                except entry_missing:
                    continue
                if meta.size is None:
                    return None
                total += int(meta.size)
                break
            else:
                return None
        return total
    except ModelDownloadError:
        return None
    except Exception:  # noqa: BLE001 - any failure only means "size unknown"
        return None


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
    receives (bytes done, bytes total; 0 when unknown) of the file being fetched, every :data:`POLL_S` seconds
    while it transfers, on the calling thread; without it huggingface_hub draws its tqdm bar. ``progress`` may raise
    :class:`~vitviz.errors.LoadCancelled` to stop the download: it propagates unchanged, within ``POLL_S``, and
    leaves the cache as it was (no partial file).
    """
    # 1. Everything already cached: no network access at all.
    session = _Session(repo_id, revision, cache)
    folder, first = _find_cached(session, files, optional)
    if folder is not None:
        return folder

    # 2. Download (all files, so that they come from one snapshot; cached blobs are not fetched again).
    entries = _choices(files)
    if is_offline():
        raise session.fail(
            first,
            "offline mode is on (HF_HUB_OFFLINE=1) and the file is not in the local cache; unset HF_HUB_OFFLINE "
            f"and connect to the internet once ({session.cache_hint}), or pass a local model folder",
        )
    reason = _run(lambda: _probe(session.endpoint), progress, _Transfer())
    if reason:
        raise session.fail(
            first, f"no network connection ({reason}); connect to the internet once ({session.cache_hint}), "
            "or pass a local model folder"
        )
    paths: list[Path] = []
    for choices in entries:
        for filename in choices:
            path = session.fetch(filename, progress)
            if path is not None:
                paths.append(path)
                break
        else:
            raise ModelDownloadError(
                f"cannot download {repo_id} from {session.where}: the repository has none of {', '.join(choices)}"
            )
    for filename in optional:
        try:
            path = session.fetch(filename, progress)
        except ModelDownloadError:
            continue
        if path is not None:
            paths.append(path)
    return _same_folder(repo_id, paths)
