"""Settings of the load benchmark's gunicorn: the product's settings (rra/settings.py,
read from the environment as usual) with one change, the URLconf, which adds the bare
"hello" view that bench/load.py measures as the machine's ceiling. Only bench/load.py
selects it (DJANGO_SETTINGS_MODULE=bench.load_settings); the product never serves it.
"""

from rra.settings import *  # noqa: F403

ROOT_URLCONF = "bench.load_urls"
