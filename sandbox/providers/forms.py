"""Request bodies as the providers read them: application/x-www-form-urlencoded and multipart/form-data."""

from __future__ import annotations

from urllib.parse import parse_qsl


class FormError(ValueError):
    def __init__(self, kind: str) -> None:  # "encoding" (not UTF-8) or "syntax"
        super().__init__(kind)
        self.kind = kind


def _boundary(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip().strip('"') or None
    return None


def _disposition(headers: bytes) -> tuple[str | None, str | None]:
    """(name, filename) from a part's Content-Disposition header."""
    for line in headers.split(b"\r\n"):
        head, _, value = line.partition(b":")
        if head.strip().lower() != b"content-disposition":
            continue
        name = filename = None
        for item in value.decode("utf-8", "replace").split(";")[1:]:
            key, _, val = item.strip().partition("=")
            val = val.strip().strip('"')
            if key.lower() == "name":
                name = val
            elif key.lower() == "filename":
                filename = val
        return name, filename
    return None, None


def parse_multipart(body: bytes, boundary: str) -> tuple[dict[str, str], dict[str, bytes]]:
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise FormError("syntax")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        headers, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise FormError("syntax")
        content = content.removesuffix(b"\r\n")
        name, filename = _disposition(headers)
        if name is None:
            continue
        if filename is not None:
            files.setdefault(name, content)
        else:
            try:
                fields.setdefault(name, content.decode("utf-8"))
            except UnicodeDecodeError:
                raise FormError("encoding") from None
    return fields, files


def parse_form(content_type: str, body: bytes, query: str = "") -> tuple[dict[str, str], dict[str, bytes]]:
    """Fields (first occurrence wins; the body over the query string) and uploaded files."""
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        boundary = _boundary(content_type)
        if not boundary:
            raise FormError("syntax")
        fields, files = parse_multipart(body, boundary)
    elif body:
        try:
            text = body.decode("utf-8")
            for k, v in parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict"):
                fields.setdefault(k, v)
        except UnicodeDecodeError:
            raise FormError("encoding") from None
    for k, v in parse_qsl(query, keep_blank_values=True):
        fields.setdefault(k, v)
    return fields, files
