# Bugsink 2.6.1 settings for a throw-away local dev instance. All state lives next to this file, so the
# directory can be migrated once and then copied (cp -a) to any new location / used with any port.
import os
from pathlib import Path

from bugsink.settings.default import *  # noqa: F401,F403
from bugsink.settings.default import DATABASES

_HERE = Path(__file__).resolve().parent
_PORT = os.environ.get("BUGSINK_PORT", "8000")  # must equal the port gunicorn binds (only used for DSN/links)

SECRET_KEY = os.environ.get("BUGSINK_SECRET_KEY", "local-dev-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz")
DEBUG = False
TIME_ZONE = "UTC"

DATABASES["default"]["NAME"] = str(_HERE / "db.sqlite3")
DATABASES["default"]["TEST"]["NAME"] = str(_HERE / "test.sqlite3")
DATABASES["snappea"]["NAME"] = str(_HERE / "snappea.sqlite3")

# Digest events synchronously inside the ingest request: no bugsink-runsnappea process needed.
SNAPPEA = {
    "TASK_ALWAYS_EAGER": True,
    "WAKEUP_CALLS_DIR": str(_HERE / "snappea-wakeup"),  # unused when eager; default would be /tmp/snappea.wakeup
}

EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"  # never send mail, print nothing

# Plain HTTP on loopback, no reverse proxy.
SECURE_PROXY_SSL_HEADER = None
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
USE_X_REAL_IP = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
CSRF_TRUSTED_ORIGINS = [f"http://127.0.0.1:{_PORT}", f"http://localhost:{_PORT}"]  # only matters for browser UI login

SENTRY_DSN = None  # Bugsink does not report its own errors anywhere

BUGSINK = {
    "BASE_URL": f"http://127.0.0.1:{_PORT}",  # no trailing slash; used to build Project.dsn
    "SINGLE_USER": False,
    "SINGLE_TEAM": False,
    "USER_REGISTRATION": "CB_NOBODY",
    "TEAM_CREATION": "CB_ADMINS",
    "PHONEHOME": False,  # default True => POST https://www.bugsink.com/phonehome/v1/ (hourly, from requests)
    "INGEST_STORE_BASE_DIR": str(_HERE / "ingestion"),  # default /tmp/bugsink/ingestion is shared between instances
    # default quotas are 1000 events / 5 min (per project and global); tests that send more get HTTP 429
    "MAX_EVENTS_PER_PROJECT_PER_5_MINUTES": 1_000_000,
    "MAX_EVENTS_PER_PROJECT_PER_HOUR": 1_000_000,
    "MAX_EVENTS_PER_5_MINUTES": 1_000_000,
    "MAX_EVENTS_PER_HOUR": 1_000_000,
}
