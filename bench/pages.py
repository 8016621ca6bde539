"""Page speed with a hospital's worth of data: 10,000 patients and 100,000 scans on PostgreSQL.

    nice .venv/bin/python bench/pages.py                    # seeds portal_bench_pages once, then measures
    nice .venv/bin/python bench/pages.py --requests 20      # fewer requests per page
    nice .venv/bin/python bench/pages.py --drop             # drop the database afterwards

The database (PostgreSQL at BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432) is created
and migrated on first use and reused while it still holds the seeded rows (--reseed starts over).
Each page is requested through the Django test client (the whole middleware, view and template
path, no network) as a clinician of one site and as an administrator of every site: warm-up, then
--requests timed requests; p50, p95 and the number of SQL queries are printed against the 100 ms
target, with the CPU model, and p95 as a multiple of the floor measured in the same run (a search
that finds nobody: what any signed-in page costs on this machine at this moment, which on a shared
machine moves more than the pages do). The seed: 4 sites, ~95% of scans done with one prediction
each (~24% likely positive), ~20% of those reviewed, the rest waiting, analysing or failed, upload
times spread over a year, and one patient with 400 scans (the longest history).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 100.0
# What any signed-in page costs on this machine now (session, user, permissions, the base template):
# a search that finds nobody. Each page's p95 is also given as a multiple of it.
FLOOR = "floor: patient list, no match"
SITES = 4
LONGEST_HISTORY = 400


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--scans", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
    parser.add_argument("--database", default="portal_bench_pages")
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--drop", action="store_true", help="drop the database when done")
    return parser.parse_args()


def server_url():
    return os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432").rstrip("/")


def on_server(sql, parameters=()):
    """One statement on the server's maintenance database (CREATE / DROP DATABASE need autocommit)."""
    import psycopg2

    connection = psycopg2.connect(f"{server_url()}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchone() if cursor.description else None
    finally:
        connection.close()


def database_exists(name):
    return on_server("SELECT 1 FROM pg_database WHERE datname = %s", [name]) is not None


def drop_database(name):
    from django.conf import settings
    from django.db import connections

    if settings.configured:
        connections.close_all()
    on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def configure_django(database):
    os.environ["DATABASE_URL"] = f"{server_url()}/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ.setdefault("PORTAL_LOG_LEVEL", "WARNING")  # not a line per sign-in
    os.environ.setdefault("PORTAL_DATA_DIR", str(Path("/tmp") / f"bench-pages-{os.getuid()}"))
    import django

    django.setup()
    from django.conf import settings

    from portal import bootstrap

    bootstrap.create_folders(settings)


def is_seeded(patients, scans):
    from diagnosis.models import Patient, Scan

    try:
        return Patient.objects.count() == patients and Scan.objects.count() == scans
    except Exception:  # no tables yet
        return False


def seed(patients_wanted, scans_wanted):
    """Bulk inserts, with upload times spread over the last year (auto_now_add set aside for it)."""
    from django.contrib.auth.models import Group, User
    from django.db import transaction
    from django.utils import timezone

    from diagnosis import roles
    from diagnosis.models import Patient, Prediction, Review, Scan, Site, StaffProfile
    from ml.models import ModelVersion

    rng = random.Random(9)
    now = timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        roles.ensure_role_groups()
        sites = Site.objects.bulk_create([Site(name=f"Hospital {n}", code=f"site-{n}") for n in range(SITES)])
        users = {}
        for username, group in (("clinician", roles.CLINICIANS), ("administrator", roles.ADMINISTRATORS)):
            user = User.objects.create_user(username, password="bench-only-password-1", is_staff=group == roles.ADMINISTRATORS)
            user.groups.add(Group.objects.get(name=group))
            StaffProfile.objects.create(user=user, site=sites[0])
            users[username] = user
        version = ModelVersion.objects.create(
            status=ModelVersion.Status.ACTIVE, artifact_path="/nonexistent/bench.keras", sha256="0" * 64, backbone="xception",
            input_size=299, preprocessing={}, class_names=["covid", "normal"], positive_class="covid", threshold=0.5,
            metrics={"split": "test", "n": 400, "sensitivity": {"value": 0.9, "ci": [0.85, 0.94]},
                     "specificity": {"value": 0.88, "ci": [0.83, 0.92]}, "roc_auc": {"value": 0.95, "ci": [0.93, 0.97]}},
        )
        family_names = ["Okafor", "Smith", "Garcia", "Nguyen", "Müller", "Kowalski", "Haddad", "Tanaka", "Silva", "Moreau"]
        patients = Patient.objects.bulk_create(
            [
                Patient(
                    site=sites[n % SITES], medical_record_number=f"MRN-{n:06d}", family_name=f"{rng.choice(family_names)}{n % 997}",
                    given_name=rng.choice(["Ada", "Ben", "Chloe", "Dev", "Eva", "Femi", "Gus"]), sex=rng.choice("FMOU"),
                )
                for n in range(patients_wanted)
            ],
            batch_size=2000,
        )
        # One patient with the longest history; the others share the rest.
        owners = [patients[0]] * LONGEST_HISTORY + [rng.choice(patients[1:]) for _ in range(scans_wanted - LONGEST_HISTORY)]
        statuses = [Scan.Status.DONE] * 95 + [Scan.Status.QUEUED] * 2 + [Scan.Status.RUNNING] + [Scan.Status.FAILED] * 2
        outcomes = []  # per scan: (status, positive probability, reviewed)
        for _ in owners:
            status = rng.choice(statuses)
            outcomes.append((status, rng.random() ** 2.5, rng.random() < 0.2) if status == Scan.Status.DONE else (status, None, False))
        uploaded_at = Scan._meta.get_field("uploaded_at")
        uploaded_at.auto_now_add = False
        try:
            scans = Scan.objects.bulk_create(
                [
                    Scan(
                        patient=owner, uploaded_by=users["clinician"], uploaded_at=now - timedelta(minutes=rng.randrange(525_600)),
                        stored_name=f"bench/{uuid.uuid4().hex}.png", file_format="png", width=1024, height=1024, size_bytes=200_000,
                        sha256="0" * 64, status=status, failure_reason="The image could not be read." if status == Scan.Status.FAILED else "",
                        # The worklist's columns, as inference.record_prediction and services.review_prediction set them.
                        likely_positive=None if p is None else p >= version.threshold, reviewed=reviewed,
                    )
                    for owner, (status, p, reviewed) in zip(owners, outcomes)
                ],
                batch_size=5000,
            )
        finally:
            uploaded_at.auto_now_add = True
        predictions = Prediction.objects.bulk_create(
            [
                Prediction(
                    scan=scan, model_version=version, label="covid" if p >= version.threshold else "normal",
                    probabilities={"covid": p, "normal": 1 - p}, positive_probability=p, threshold=version.threshold,
                    inference_ms=150.0, queue_to_result_ms=900.0,
                )
                for scan, (status, p, reviewed) in zip(scans, outcomes)
                if p is not None
            ],
            batch_size=5000,
        )
        reviewed = [prediction for prediction in predictions if prediction.scan.reviewed]
        Review.objects.bulk_create(
            [Review(prediction=prediction, reviewer=users["clinician"], agrees=rng.random() < 0.8) for prediction in reviewed], batch_size=5000
        )
    print(f"seeded {len(patients)} patients, {len(scans)} scans, {len(predictions)} predictions, {len(reviewed)} reviews "
          f"in {time.perf_counter() - started:.0f} s")


def pages(client_user):
    """(name, url) of every page measured, for this user."""
    from django.urls import reverse

    from diagnosis import selectors
    from diagnosis.models import Patient

    visible = selectors.patients_visible_to(client_user)
    longest = Patient.objects.get(medical_record_number="MRN-000000")
    typical = visible.exclude(pk=longest.pk).order_by("medical_record_number")[len(visible) // 2]
    home, patients = reverse("diagnosis:home"), reverse("diagnosis:patient_list")
    result = [
        (FLOOR, f"{patients}?q=no-such-patient"),
        ("worklist", home),
        ("worklist, likely positive & unreviewed", f"{home}?result=positive&review=unreviewed"),
        ("worklist, waiting", f"{home}?status=queued"),
        ("worklist, one month", f"{home}?date_from={(time.strftime('%Y-%m'))}-01"),
        ("worklist, page 40", f"{home}?page=40"),
        ("patient list", patients),
        ("patient list, search 'smith'", f"{patients}?q=smith"),
        ("patient list, search by MRN", f"{patients}?q={typical.medical_record_number}"),
        ("patient page, typical", reverse("diagnosis:patient_detail", args=[typical.pk])),
        ("API worklist", "/api/v1/worklist/"),
        ("API patients", "/api/v1/patients/"),
        ("API patient's scans, typical", f"/api/v1/patients/{typical.pk}/scans/"),
    ]
    if visible.filter(pk=longest.pk).exists():
        result.insert(9, (f"patient page, {LONGEST_HISTORY} scans", reverse("diagnosis:patient_detail", args=[longest.pk])))
    return result


def measure(client, url, requests):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # warm-up: template loading, the database's caches
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    queries = len(captured)  # now: the next request empties the connection's log
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    return statistics.median(timings), p95, queries


def main():
    sys.stdout.reconfigure(line_buffering=True)  # each figure as it is measured, also into a file
    args = parse_args()
    if args.reseed:
        drop_database(args.database)
    if not database_exists(args.database):
        on_server(f'CREATE DATABASE "{args.database}"')
    configure_django(args.database)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from ml.engine.serve.serving import cpu_description

    call_command("migrate", verbosity=0)
    if not is_seeded(args.patients, args.scans):
        if User.objects.exists():
            raise SystemExit(f"{args.database} holds other data; run with --reseed.")
        seed(args.patients, args.scans)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    cpu = cpu_description()
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores available); {args.patients} patients, {args.scans} scans; "
          f"{args.requests} requests per page; target p95 < {TARGET_MS:.0f} ms")
    failures = 0
    for username in ("clinician", "administrator"):
        user = User.objects.get(username=username)
        client = Client()
        client.force_login(user)
        print(f"\nas {username}:\n  {'page':44} {'p50 ms':>8} {'p95 ms':>8} {'x floor':>8} {'queries':>8}")
        for name, url in pages(user):
            p50, p95, queries = measure(client, url, args.requests)
            floor = p95 if name == FLOOR else floor
            verdict = "ok" if p95 < TARGET_MS else "SLOW"
            failures += verdict != "ok"
            print(f"  {name:44} {p50:8.1f} {p95:8.1f} {p95 / floor:8.1f} {queries:8d}  {verdict}")
    if args.drop:
        drop_database(args.database)
    print(f"\n{failures} page(s) over the {TARGET_MS:.0f} ms target" if failures else f"\nevery page under the {TARGET_MS:.0f} ms target")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
