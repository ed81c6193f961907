from __future__ import annotations

from django.core.files.storage import Storage, storages
from django.db import models


def overwriting_storage() -> Storage:
    # a callable: migrations record the function, never the storage's options
    return storages["overwriting"]


class Recording(models.Model):
    file = models.FileField(upload_to="recordings/", max_length=120)
    transcript = models.FileField(upload_to="transcripts/", storage=overwriting_storage, blank=True)

    objects: models.Manager[Recording] = models.Manager()
