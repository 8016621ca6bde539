"""First-run setup, safe to repeat: roles, a site, the first administrator, a demo model."""
import os
import secrets

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from diagnosis import roles
from diagnosis.models import Site, StaffProfile
from ml.demo import ensure_demo_model
from portal.file_storage import ensure_buckets


class Command(BaseCommand):
    help = "Create the roles, a first site and administrator (password printed once) and a demo model version if none exist."

    def add_arguments(self, parser):
        parser.add_argument("--no-demo-model", action="store_true", help="Do not train the demo model.")

    def handle(self, *args, no_demo_model=False, **options):
        for bucket in ensure_buckets():  # before the demo model, whose files go there
            self.stdout.write(f"Created the private bucket {bucket} in the object store.")
        roles.ensure_role_groups()
        site = Site.objects.first()
        if site is None:
            # Silent like every new site: this is also a hospital's first install, where nobody has
            # yet checked the model on the site's films. The first account is an administrator, who
            # sees every result; clinicians added later read blind until the site is switched live.
            site = Site.objects.create(name="Main hospital", code="main")
            self.stdout.write(f"Created the site {site.name}, in its silent period: only administrators see AI results until one switches it live (Sites).")
        if not User.objects.exists():
            self._create_first_administrator(site)
        if not no_demo_model:
            version = ensure_demo_model(progress=lambda line: self.stdout.write(line))
            if version is not None:
                self.stdout.write(self.style.WARNING(
                    f"Registered and activated demo model {version.label}: trained on synthetic images, labelled DEMO wherever its output appears."
                ))

    def _create_first_administrator(self, site):
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user("admin", password=password, is_staff=True)
        user.groups.add(Group.objects.get(name=roles.ADMINISTRATORS))
        StaffProfile.objects.create(user=user, site=site)
        handover = os.environ.get("PORTAL_CREDENTIALS_FD")
        if handover:
            # `make run` (portal.launcher) prints it last, framed, once the portal is up.
            with os.fdopen(int(handover), "w") as launcher:
                launcher.write(f"admin {password}\n")
            self.stdout.write("First administrator created; its password is shown when the portal is up.")
            return
        self.stdout.write(self.style.SUCCESS(
            "\n  First administrator created (this password is shown only once):\n"
            f"    username: admin\n    password: {password}\n"
            "  Lost it? `.venv/bin/python manage.py changepassword admin`\n"
        ))
