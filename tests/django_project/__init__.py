"""A small Django project whose tests Django's own runner runs against the real servers
(`tests/test_django.py` starts it in a subprocess with the servers' environment)."""
