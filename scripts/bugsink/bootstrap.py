# Idempotent setup of the local Bugsink: an admin user, a team, the project the
# Worker reports to, and a REST API token. Run by `cargo xtask` through
# `bugsink-manage shell --no-imports -c`; prints one JSON line with the result.
import json, os, uuid
from django.contrib.auth import get_user_model
from teams.models import Team, TeamMembership, TeamRole
from projects.models import Project, ProjectMembership, ProjectRole
from bsmain.models import AuthToken

e = os.environ
email = e.get("BUGSINK_ADMIN_EMAIL", "admin@example.com")
User = get_user_model()
user = User.objects.filter(username=email).first() or User.objects.create_superuser(
    username=email, email=email, password=e.get("BUGSINK_ADMIN_PASSWORD", "admin"))
team, _ = Team.objects.get_or_create(name=e.get("BUGSINK_TEAM", "dev"))
TeamMembership.objects.get_or_create(team=team, user=user, defaults=dict(role=TeamRole.ADMIN, accepted=True))
kw = {"sentry_key": uuid.UUID(e["BUGSINK_SENTRY_KEY"])} if e.get("BUGSINK_SENTRY_KEY") else {}
project = Project.objects.filter(name=e.get("BUGSINK_PROJECT", "app")).first() or Project.objects.create(
    team=team, name=e.get("BUGSINK_PROJECT", "app"), **kw)
ProjectMembership.objects.get_or_create(project=project, user=user, defaults=dict(role=ProjectRole.ADMIN, accepted=True))
tkw = {"token": e["BUGSINK_API_TOKEN"]} if e.get("BUGSINK_API_TOKEN") else {}
token = AuthToken.objects.filter(**tkw).first() if tkw else None
token = token or AuthToken.create_full_access(description="dev-stack", **tkw)
print(json.dumps({"project_id": project.id, "sentry_key": project.sentry_key.hex, "dsn": project.dsn,
                  "team_id": str(team.id), "api_token": token.token}))
