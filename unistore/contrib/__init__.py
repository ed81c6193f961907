"""Integrations with frameworks; each imports its framework lazily (`unistore.contrib.django`)."""
