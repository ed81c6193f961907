"""Settings of the test project. The providers' endpoints, bucket, container and credentials
come from the environment (`tests/test_django.py` passes the servers' variables); the storages
differ only in their OPTIONS, which is what they test."""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = "unistore-test-project-not-a-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["tests.django_project.recordings"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# uploads above 1 MiB go to a TemporaryUploadedFile on disk, as in production
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_TEMP_DIR = os.environ.get("UNISTORE_TEST_SPOOL_DIR") or None

BACKEND = "unistore.contrib.django.UnistoreStorage"
BOTH: dict[str, Any] = {"STORAGE_UPLOAD_MODE": "both", "URL_EXPIRES": 300}

STORAGES: dict[str, dict[str, Any]] = {
    # the contract under test: never replace a file, pick another name
    "default": {"BACKEND": BACKEND, "OPTIONS": {**BOTH, "STORAGE_OVERWRITE": "false"}},
    "overwriting": {"BACKEND": BACKEND, "OPTIONS": {**BOTH, "STORAGE_OVERWRITE": True}},
    # what a web worker that must stay small would set: 5 MiB parts, one in flight per provider
    "bounded": {"BACKEND": BACKEND, "OPTIONS": {**BOTH, "STORAGE_CHUNK_SIZE": "5MiB", "STORAGE_MAX_CONCURRENCY": 1}},
    "public": {
        "BACKEND": BACKEND,
        "OPTIONS": {**BOTH, "PUBLIC_BASE_URL": "https://cdn.example.test/recordings/"},
    },
}
