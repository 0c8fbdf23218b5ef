"""Keeping secrets out of everything the gateway writes: log lines, problem details, metric labels.

Two complementary defences: by *name* (a query parameter called `apikey` is redacted whatever its
value) and by *value* (a value known to be secret is redacted wherever it appears, in any of the
encodings it takes inside a URL).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from urllib.parse import quote, quote_plus

import orjson
from yarl import URL

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SENSITIVE_QUERY_NAMES",
    "SecretRegistry",
    "redact_credentials",
    "redact_url",
    "shown_url",
    "strip_url_queries",
]

REDACTED = "[REDACTED]"

MIN_SECRET_LENGTH = 4
"""Shorter values are not treated as secrets: scrubbing "ab" everywhere would mangle every line."""

SENSITIVE_QUERY_NAMES: re.Pattern[str] = re.compile(
    r"key|token|secret|passw(?:or)?d|signature|authorization|credential"
    # `sig` and `auth` only as whole words, so that `design` or `author` stay readable.
    r"|(?:^|[^a-z0-9])(?:sig|auth)(?:$|[^a-z0-9])",
    re.IGNORECASE,
)
"""Query parameter names whose values are always redacted; use with `.search(name)`."""

# The characters kept unencoded when a redacted query is written back out: readable, and `[`/`]`
# keep REDACTED legible. The result is for people, never sent anywhere.
_QUERY_SAFE = "/:@!$'()*,;[]"
_PATH_SAFE = _QUERY_SAFE + "&+="


def _encodings(secret: str) -> set[str]:
    """The forms a secret takes once it has been put into a URL (path, query, form-encoded) or
    written into a rendered log line (a JSON string, a Python repr)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    forms.add(URL("http://h/").with_query({"k": secret}).raw_query_string[2:])
    forms.add(URL.build(path="/" + secret).raw_path[1:])
    forms.add(orjson.dumps(secret).decode()[1:-1])
    forms.add(repr(secret)[1:-1])
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _forms(secrets: Iterable[str]) -> set[str]:
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            forms |= _encodings(secret)
    return forms


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    return _compile(_forms(secrets))


def _compile(forms: set[str]) -> re.Pattern[str] | None:
    if not forms:
        return None
    # Longest first, so that a secret containing another one is replaced whole.
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


_SCREENED_FORMS = 16


class SecretRegistry:
    """Values known to be secret (API keys, tokens), scrubbed from any text before it is written.

    Bounded: when more than `max_size` distinct values have been added, the least recently added are
    forgotten, so a provider that mints a fresh token per call cannot grow it without limit.
    """

    def __init__(self, *, max_size: int = 1024) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._max_size = max_size
        self._compiled: re.Pattern[str] | None = None
        # With a few forms, `in` finds that none occurs (the usual case) at a fraction of the
        # pattern's cost, which tries its alternatives at every position of the text.
        self._screen: tuple[str, ...] | None = None
        self._stale = False
        self.version = 0
        """Changes whenever the set of values does: what was scrubbed before may differ now."""

    def add(self, *values: str) -> None:
        for value in values:
            if len(value) < MIN_SECRET_LENGTH:
                continue
            if value in self._values:
                self._values.move_to_end(value)
                continue
            self._values[value] = None
            self._stale = True
            self.version += 1
            if len(self._values) > self._max_size:
                self._values.popitem(last=False)

    def scrub(self, text: str) -> str:
        if self._stale:
            # Compiled lazily: credentials are registered on every attempt but rarely change.
            forms = _forms(self._values)
            self._compiled = _compile(forms)
            self._screen = tuple(forms) if len(forms) <= _SCREENED_FORMS else None
            self._stale = False
        if self._compiled is None:
            return text
        if self._screen is not None:
            for form in self._screen:
                if form in text:
                    break
            else:
                return text
        return self._compiled.sub(REDACTED, text)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __repr__(self) -> str:
        return f"SecretRegistry({len(self)} values)"


def redact_url(url: str | URL, secrets: Iterable[str] | SecretRegistry = ()) -> str:
    """A URL fit for a log line: sensitive query values and any known secret replaced by REDACTED.

    The userinfo password is removed. The result is meant to be read, not requested: it is not
    guaranteed to round-trip. A `SecretRegistry` brings its pattern compiled once; plain values
    are compiled here.
    """
    if isinstance(secrets, SecretRegistry):
        scrub = secrets.scrub
    else:
        pattern = _pattern(secrets)

        def scrub(text: str) -> str:
            return text if pattern is None else pattern.sub(REDACTED, text)

    if isinstance(url, URL) and not url.raw_query_string and url.raw_password is None:
        return scrub(str(url))  # the common case: nothing to take apart, only secrets to find
    text = str(url)
    try:
        parsed = url if isinstance(url, URL) else URL(text)
        head = ""
        if parsed.absolute:
            base = parsed.with_path("").with_query(None).with_fragment(None)
            head = str(base.with_password(None) if base.password is not None else base)
        # Compare decoded, so that a secret is found however its characters were escaped.
        path = parsed.path
        scrubbed = scrub(path)
        path = parsed.raw_path if scrubbed == path else quote(scrubbed, safe=_PATH_SAFE)
        pairs = []
        for name, value in parsed.query.items():
            shown = REDACTED if SENSITIVE_QUERY_NAMES.search(name) else scrub(value)
            pairs.append(f"{quote(name, safe=_QUERY_SAFE)}={quote(shown, safe=_QUERY_SAFE)}")
        fragment = scrub(parsed.fragment)
    except ValueError:
        # Unparseable: keep only what precedes the query, which cannot hold a named parameter.
        head, sep, _ = text.partition("?")
        return scrub(head) + (f"?{REDACTED}" if sep else "")
    out = head + path
    if pairs:
        out += "?" + "&".join(pairs)
    if fragment:
        out += "#" + quote(fragment, safe=_QUERY_SAFE + "?")
    # A secret may also sit in the user name, or in an encoded form the decoding above missed.
    return scrub(out)


def shown_url(url: str) -> str:
    """A subscription's URL as its owner is shown it (API answers, events): a broker URL's user
    name and password are left out whole. A URL without credentials (every webhook's) is shown
    as it is; a log line is `redact_url(shown_url(url))`."""
    if "@" not in url:
        return url
    parsed = URL(url)
    if parsed.raw_user is None and parsed.raw_password is None:
        return url
    return str(parsed.with_user(None))


_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s\"'<>]*")


def strip_url_queries(text: str) -> str:
    """Replace the query string of every URL in free text (an upstream error message, say)."""
    return _URL_QUERY.sub(rf"\1?{REDACTED}", text)


# Shaped like a credential: an Authorization header's value (up to a quote, a backslash escape or
# the line's end), a Bearer or Basic token, a caller key (`gwk_`, see tenants.new_key).
_CREDENTIAL = re.compile(
    r"""(?i:(authorization(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?)[^"'\\\r\n]+)"""
    r"""|((?i:bearer|basic)\s+)[^\s"'\\]{8,}"""
    r"|gwk_[A-Za-z0-9_-]+"
)


def redact_credentials(text: str) -> str:
    """Redact what looks like a credential, for text whose secrets are not known by value (a
    library's log record quoting a request: caller keys are known only as digests)."""
    return _CREDENTIAL.sub(lambda m: (m[1] or m[2] or "") + REDACTED, text)
