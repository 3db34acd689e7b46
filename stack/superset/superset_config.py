"""Superset configuration of the course, shared by the native run and Docker Compose.

Everything comes from the environment (the values of ``.env``; compose and the native
runner set the hosts): no secret and no address is written here.

- ``SUPERSET_SECRET_KEY``: signs sessions and encrypts the stored database passwords;
- the metadata database ``superset`` lives in the course's PostgreSQL (``POSTGRES_*``),
  unless ``SUPERSET_DATABASE_URI`` names another one (a SQLite file for a quick test).
"""

import os
from urllib.parse import quote

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

SQLALCHEMY_DATABASE_URI = os.environ.get("SUPERSET_DATABASE_URI") or (
    "postgresql+psycopg2://{user}:{password}@{host}:{port}/superset".format(
        user=quote(os.environ["POSTGRES_USER"], safe=""),
        password=quote(os.environ["POSTGRES_PASSWORD"], safe=""),
        host=os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        port=os.environ.get("POSTGRES_PORT", "5432"),
    )
)

# Served on 127.0.0.1 over plain HTTP in class: no HTTPS redirection, no HSTS
TALISMAN_ENABLED = False
# No call to external services from the classroom (map tiles, telemetry)
MAPBOX_API_KEY = ""

# Dashboards as code are imported by the provisioning job; keep the UI in French
BABEL_DEFAULT_LOCALE = "fr"
LANGUAGES = {"fr": {"flag": "fr", "name": "Français"}, "en": {"flag": "us", "name": "English"}}
