"""Train a model version from the shell, with the same checks and code path as the portal's form."""
from django.core.management.base import BaseCommand, CommandError

from ml import services, trust
from ml.engine import BACKBONES, DEFAULT_BACKBONE
from ml.engine.data.splits import parse_source_names
from ml.models import TrainingJob, format_metric


class Command(BaseCommand):
    help = (
        "Train a model on a dataset folder (one sub-folder per class, or train/ and test/), print a line per epoch, "
        "register the result as a candidate model version and print its id. The run is recorded as a training job."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="Dataset folder: relative to the datasets folder, or an absolute path.")
        parser.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=sorted(BACKBONES))
        parser.add_argument("--epochs", type=int, default=10)
        parser.add_argument("--image-size", type=int, default=None, help="Input size in pixels (default: the backbone's, 299 for Xception).")
        parser.add_argument("--weights", default=None, help="imagenet, none, or a weights file (default: ML_DEFAULT_WEIGHTS, imagenet).")
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--held-out-sources", type=parse_source_names, default=(), metavar="NAMES",
                            help='Comma-separated sources of the manifest (a name or its start, e.g. "COVID-CXNet,NIH") kept out of '
                                 "training and measured apart: the source-held-out test.")
        parser.add_argument("--activate", action="store_true", help="Promote the new version to active when training succeeds.")
        parser.add_argument("--override-safeguards", metavar="REASON", default="",
                            help="With --activate: promote even if the promotion safeguards object, recording this reason.")

    def handle(self, *args, data, backbone, epochs, image_size, weights, batch_size, seed, held_out_sources, activate, override_safeguards,
               **options):
        try:
            job = services.start_training_job(
                actor=None, dataset=data, backbone=backbone, epochs=epochs, image_size=image_size, weights=weights,
                batch_size=batch_size, seed=seed, held_out_sources=held_out_sources, enqueue=False, allow_outside_root=True,
            )
        except services.TrainingRefused as refusal:
            raise CommandError(str(refusal)) from refusal
        classes = ", ".join(f"{name} {count}" for name, count in job.dataset_summary.get("classes", {}).items())
        self.stdout.write(f"Training job {job.pk}: {backbone} {job.parameters['image_size']}px, {epochs} epochs, weights {job.parameters['weights']}, on {job.dataset_path} ({classes})")
        job = services.execute_training_job(job.pk, on_progress=self.stdout.write)
        if job is None or job.status != TrainingJob.Status.SUCCEEDED:
            status = job.get_status_display().lower() if job else "not run"
            raise CommandError(f"Training job {getattr(job, 'pk', '?')} {status}: {getattr(job, 'failure_reason', '')}")
        version = job.version
        if version.trained_on_synthetic_data:
            self.stdout.write(self.style.WARNING(f"DEMO: {version.label} was trained on synthetic images; its results have no clinical meaning."))
        figures = version.headline_metrics
        self.stdout.write(f"Held-out {figures['evaluated_on']} (n={figures['n']}): " + ", ".join(
            f"{name} {figure['value']:.3f}" for name, figure in figures.items() if isinstance(figure, dict) and figure.get("value") is not None
        ))
        held = trust.source_held_out(version)
        if held:
            self.stdout.write(f"Source-held-out test ({', '.join(held['sources'])}; n={held['n']}): " + ", ".join(
                f"{name} {format_metric(held[name], digits=3)}" for name in ("sensitivity", "specificity", "roc_auc")
            ) + (f". {held['auc_caveat']}" if held["auc_caveat"] else "."))
        if activate:
            try:
                services.promote_version(version.pk, reason=override_safeguards or "manage.py train --activate",
                                         override=bool(override_safeguards))
            except services.PromotionError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(self.style.SUCCESS(f"Registered and activated {version.label}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Registered candidate {version.label}; promote it on the model versions page to use it."))
        self.stdout.write(f"version id: {version.pk}")
