"""MkDocs hook: the repository's images (under `assets/`) on the site, without a second copy in docs/.

MkDocs serves only files under docs/. The pages link those images where they lie in the repository
(`![...](../assets/live.gif)` from docs/live-mode.md), which is what GitHub shows. This hook adds every image that a
page links that way to the site, as `repo/assets/...`, and points the page's image there. Other links and images are
left alone, so MkDocs still reports those that lead nowhere.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

_IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)(\))")  # ![alt](target)
_SITE_DIR = "repo"  # where the linked repository files appear on the site


def _repo_path(config, page_uri: str, url: str) -> str | None:
    """The repository path under assets/ that `url`, written in the page `page_uri`, points to, else None."""
    if "://" in url or url.startswith(("/", "#", "mailto:")):
        return None
    root = Path(config.config_file_path).resolve().parent
    docs = Path(config.docs_dir).resolve().relative_to(root).as_posix()
    path = posixpath.normpath(posixpath.join(docs, posixpath.dirname(page_uri), url))
    if not path.startswith("assets/") or not (root / path).is_file():
        return None
    return path


def on_files(files, config):
    root = Path(config.config_file_path).resolve().parent
    for page in list(files.documentation_pages()):
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        for match in _IMAGE.finditer(text):
            path = _repo_path(config, page.src_uri, match.group(2))
            uri = f"{_SITE_DIR}/{path}"
            if path and files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(root / path)))
    return files


def on_page_markdown(markdown, page, config, files):
    def relink(match):
        path = _repo_path(config, page.file.src_uri, match.group(2))
        if path is None:
            return match.group(0)
        url = posixpath.relpath(f"{_SITE_DIR}/{path}", posixpath.dirname(page.file.src_uri) or ".")
        return match.group(1) + url + match.group(3)

    return _IMAGE.sub(relink, markdown)
