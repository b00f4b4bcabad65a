"""Test messages and what a sealed copy of them must hold, for both formats."""

import secrets

import decryptors
import harness

SENDER = harness.SENDER


def entity_message(subject, body, content_type=b"text/plain; charset=utf-8", extra=b"",
                   to="alice@signed.test"):
    return (b"From: <" + SENDER.encode() + b">\r\nTo: <" + to.encode() + b">\r\nSubject: "
            + subject.encode() + b"\r\nMessage-ID: <" + secrets.token_hex(8).encode()
            + b"@remote.example>\r\nMIME-Version: 1.0\r\nContent-Type: " + content_type + b"\r\n"
            + extra + b"\r\n" + body)


def split_header(data):
    """(header lines with folded lines joined by LF, body) of a message with LF or CRLF ends."""
    text = data.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    fields = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    return fields, body


def is_content_field(field):
    return field.lower().startswith((b"content-", b"mime-version:"))


def inner_entity(original):
    """The MIME entity a sealed copy of `original` holds (headers = "keep"): its content
    fields, an empty line, its body; CRLF-canonical."""
    fields, body = split_header(original)
    inner = [f for f in fields if is_content_field(f)]
    text = b"".join(f + b"\n" for f in inner) + b"\n" + body
    return decryptors.canonicalize(text)


def outer_fields(original):
    """The fields a sealed copy keeps outside (headers = "keep"): the non-content ones."""
    fields, _ = split_header(original)
    return [f for f in fields if not is_content_field(f)]
