from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

MANUAL_MD = b"""# RoboRail maintenance

## Calibration

Calibrate the chuck alignment every 500 operating hours. Use the dial gauge on the
reference bar and record the runout in the machine log.

## Data collection

When the PMAC has no communication, check the internal network cable between the
controller and the switch, then restart the measurement software.
"""


def upload_file(name: str, content: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def make_document(owner, name="manual.md", content=MANUAL_MD, **fields):
    """A Document row with a stored file, as an upload would leave it (status queued)."""
    import hashlib

    from django.core.files.base import ContentFile

    from documents.models import Document

    document = Document(
        owner=owner,
        name=name,
        mime_type=fields.pop("mime_type", "text/markdown"),
        size=len(content),
        sha256=hashlib.sha256(content + name.encode()).hexdigest(),
        **fields,
    )
    document.file.save("upload", ContentFile(content), save=False)
    document.save()
    return document
