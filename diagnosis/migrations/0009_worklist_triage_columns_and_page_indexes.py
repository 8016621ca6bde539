"""The worklist's triage state moves from per-request subqueries onto the scan row, so that its
order and filters are read from an index (10,000 patients and 100,000 scans: bench/pages.py)."""
from django.conf import settings
from django.db import migrations, models
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, Subquery


def fill_triage_columns(apps, schema_editor):
    """What the worklist computed per request until now: the latest result's label against its
    version's positive class, and whether any of the scan's results was reviewed."""
    Scan, Prediction, Review = (apps.get_model("diagnosis", name) for name in ("Scan", "Prediction", "Review"))
    latest = Prediction.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-id")
    positive = ExpressionWrapper(Q(label=F("model_version__positive_class")), output_field=BooleanField())
    Scan.objects.update(
        likely_positive=Subquery(latest.annotate(positive=positive).values("positive")[:1], output_field=BooleanField()),
        reviewed=Exists(Review.objects.filter(prediction__scan=OuterRef("pk"))),
    )


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0008_report_and_account_actions'),
        ('ml', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='scan',
            name='likely_positive',
            field=models.BooleanField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='scan',
            name='reviewed',
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(fill_triage_columns, migrations.RunPython.noop),
        migrations.AddField(
            model_name='scan',
            name='triage',
            field=models.GeneratedField(db_persist=True, expression=models.Case(models.When(models.Q(('likely_positive', True), ('reviewed', False), ('status', 'done')), then=models.Value(0)), default=models.Value(1)), output_field=models.SmallIntegerField()),
        ),
        migrations.AddIndex(
            model_name='patient',
            index=models.Index(fields=['family_name', 'given_name'], name='patient_name_order'),
        ),
        migrations.AddIndex(
            model_name='patient',
            index=models.Index(fields=['site', 'family_name', 'given_name'], name='patient_site_name_order'),
        ),
        migrations.AddIndex(
            model_name='scan',
            index=models.Index(fields=['triage', '-uploaded_at', 'id'], name='scan_worklist_order'),
        ),
        migrations.AddIndex(
            model_name='scan',
            index=models.Index(fields=['-uploaded_at'], name='scan_uploaded_at'),
        ),
        migrations.AddIndex(
            model_name='scan',
            index=models.Index(fields=['patient', '-uploaded_at'], name='scan_patient_history'),
        ),
    ]
