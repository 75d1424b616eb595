"""The target that made a file (`--bpp`, `--size`, `--psnr`), recorded in the file
for `segpic info`.

It lives in the XMP metadata box as one rdf:Description of its own namespace,
`segpic:target="size 40000"` and `segpic:met="1"` (0: --best-effort wrote
the closest file), because every reader
already takes an XMP box: a file with the record decodes with any segpic that
reads metadata (frame version 3), where a new box kind would be refused by
them. XMP readers ignore namespaces they do not know. The decoder leaves the
record out of the images it writes (it describes the .spic file, not the
picture), and the encoder drops a record that comes in with an input image.

The record is about 230 bytes (about 140 where it joins an image's own XMP) and
counts in the file's size like any metadata; --strip leaves it out with the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NAMESPACE = "urn:segpic:target:1"
_PACKET_START = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                 b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#">')
_PACKET_END = b"</rdf:RDF></x:xmpmeta>"
_DESCRIPTION = re.compile(
    rb'<rdf:Description rdf:about="" xmlns:segpic="' + re.escape(NAMESPACE.encode())
    + rb'" segpic:target="(?P<target>[a-z]+ [0-9.e+-]+)" segpic:met="(?P<met>[01])"/>')
_RDF_END = b"</rdf:RDF>"


def _description(target: str, met: bool) -> bytes:
    return (f'<rdf:Description rdf:about="" xmlns:segpic="{NAMESPACE}" '
            f'segpic:target="{target}" segpic:met="{int(met)}"/>').encode()


def encode_target(kind: str, value: float) -> str:
    """'size 40000', 'bpp 0.5', 'psnr 33': kind and value as stored."""
    return f"{kind} {int(value)}" if kind == "size" else f"{kind} {value:g}"


def read(metadata: Mapping[str, bytes]) -> dict | None:
    """{"kind", "value", "met"} of the record in `metadata`'s XMP, or None."""
    found = _DESCRIPTION.search(metadata.get("xmp", b""))
    if not found:
        return None
    kind, value = found.group("target").decode().split(" ")
    try:
        number = float(value)
    except ValueError:
        return None
    return {"kind": kind, "value": number, "met": found.group("met") == b"1"}


def without(metadata: Mapping[str, bytes]) -> dict[str, bytes]:
    """`metadata` with no record: the XMP box loses it, and goes if nothing else
    was in it."""
    out = dict(metadata)
    xmp = out.get("xmp")
    if xmp is None or not _DESCRIPTION.search(xmp):
        return out
    rest = _DESCRIPTION.sub(b"", xmp)
    if rest == _PACKET_START + _PACKET_END:
        del out["xmp"]
    else:
        out["xmp"] = rest
    return out


def with_record(metadata: Mapping[str, bytes], target: str, met: bool) -> dict[str, bytes]:
    """`metadata` with the record of `target` (replacing any older one): a packet of
    its own, or one more rdf:Description in the image's XMP. An XMP without an
    rdf:RDF element to join stays as it is, without the record."""
    out = without(metadata)
    xmp = out.get("xmp")
    record = _description(target, met)
    if xmp is None:
        out["xmp"] = _PACKET_START + record + _PACKET_END
    elif _RDF_END in xmp:
        at = xmp.rindex(_RDF_END)
        out["xmp"] = xmp[:at] + record + xmp[at:]
    return out
