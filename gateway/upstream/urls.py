"""`UpstreamUrls`: the URLs one backend's client is asked to call, parsed once each, and whether
each belongs to an origin a key is for; held by the client, so per app and backend."""

from __future__ import annotations

from typing import Final

from yarl import URL

__all__ = ["UpstreamUrls"]

# Plain dicts, not `functools.lru_cache`: a hit of the C wrapper (its key tuple, the URL hashed
# by yarl in Python) cost ~1.5 k instructions, twice an attempt. Bounded by starting over, as
# `AttemptLog.redacted`'s memo.
_MEMO_SIZE: Final = 1024


class UpstreamUrls:
    def __init__(self) -> None:
        self._absolute: dict[str, URL] = {}
        # (the URL's id, a base URL) -> (the URL, whether it is on the base URL's origin)
        self._same_origin: dict[tuple[int, str], tuple[URL, bool]] = {}
        # A configured base URL -> its origin: a few of them, asked before every attempt.
        self._origins: dict[str, URL] = {}

    def absolute(self, url: str) -> URL:
        """The plugin's URL parsed, once per distinct text: the same URL object each time also
        lets the client find its redacted form remembered."""
        target = self._absolute.get(url)
        if target is not None:
            return target
        target = URL(url)
        if not target.absolute or target.scheme not in ("http", "https"):
            raise ValueError("an upstream URL must be absolute http(s)")
        if len(self._absolute) >= _MEMO_SIZE:
            self._absolute.clear()
        self._absolute[url] = target
        return target

    def same_origin(self, url: URL, base_url: str) -> bool:
        """Whether `url` is on `base_url`'s origin."""
        # Keyed by the URL's identity (the same object comes back from `absolute`), which the
        # entry keeps alive so that its id cannot be reused while it is remembered.
        key = (id(url), base_url)
        found = self._same_origin.get(key)
        if found is not None and found[0] is url:
            return found[1]
        same = url.origin() == self._origin(base_url)
        if len(self._same_origin) >= _MEMO_SIZE:
            self._same_origin.clear()
        self._same_origin[key] = (url, same)
        return same

    def _origin(self, base_url: str) -> URL:
        origin = self._origins.get(base_url)
        if origin is None:
            if len(self._origins) >= _MEMO_SIZE:
                self._origins.clear()
            origin = self._origins[base_url] = URL(base_url).origin()
        return origin
