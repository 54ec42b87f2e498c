"""Masking of secrets in URLs and free text.

Passwords reach us only through environment variables; everything we print, log or raise goes
through these functions first so that a password can never leak into a log or the Dagster UI.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host  (password up to the last '@' before the host part: a password
# may itself hold an unescaped '@', which a greedy match still covers)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>\S+)(?=@)")
# key=value forms used by libpq conninfo strings and some error messages
_KV_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\"[^\"]*\"|\S+)", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """Return the URL with its password replaced by ***; other parts stay readable."""
    # Imported here: every `contimg` command imports this module, most never parse a URL, and
    # SQLAlchemy costs about 0.25 s of start-up.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # ValueError: a port that is not a number, an unclosed IPv6 bracket. A malformed URL
        # is exactly what an error message shows, so it must still be masked, not raise.
        return mask_text(url)
    if parsed.password is None:
        return parsed.render_as_string(hide_password=False)
    # hide_password=True renders the mask literally ("***"); setting the password to "***"
    # and rendering would URL-escape it to %2A%2A%2A.
    return parsed.render_as_string(hide_password=True)


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask URL passwords, `password=` pairs and any explicitly known secret values in text."""
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    out = _KV_PASSWORD.sub(lambda m: m.group("head") + MASK, out)
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
    return out
