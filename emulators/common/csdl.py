"""Building a CSDL `$metadata` document (OData 4.0 Part 3, XML form): the `edmx:Edmx` envelope with its
vocabulary references and one `Schema`, elements whose absent attributes are left out, and the serialized
bytes with the XML declaration the services send."""

from __future__ import annotations

import xml.etree.ElementTree as ET

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"


def document(namespace: str, alias: str | None = None,
             references: tuple[tuple[str, str, str], ...] = ()) -> tuple[ET.Element, ET.Element]:
    """(root, schema). `references`: (vocabulary URI, namespace, alias), each also applying its annotations."""
    ET.register_namespace("edmx", EDMX)
    root = ET.Element(f"{{{EDMX}}}Edmx", {"Version": "4.0"})
    for uri, ns, ns_alias in references:
        ref = ET.SubElement(root, f"{{{EDMX}}}Reference", {"Uri": uri})
        ET.SubElement(ref, f"{{{EDMX}}}Include", {"Namespace": ns, "Alias": ns_alias})
        ET.SubElement(ref, f"{{{EDMX}}}IncludeAnnotations", {"TermNamespace": ns})
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = sub(services, "Schema", Namespace=namespace, Alias=alias, xmlns=EDM)
    return root, schema


def sub(parent: ET.Element, tag: str, **attrs: str | None) -> ET.Element:
    """A child element in the Schema's (default) namespace; attributes given as None are left out."""
    return ET.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})


def serialize(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
