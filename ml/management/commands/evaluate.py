"""Measure a model version on a dataset folder and keep the result, as the portal does: an
evaluation run (a job row) executed in this process."""
import json

from django.core.management.base import CommandError

from ml import selectors, services
from ml.models import format_metric

from ._base import VersionOptionCommand


class Command(VersionOptionCommand):
    help = (
        "Evaluate a model version on a dataset folder (default: the configured evaluation set): ROC AUC, sensitivity, "
        "specificity, PPV and NPV with 95% confidence intervals. The evaluation is stored for the comparison page."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", type=int, required=True, help="Model version id.")
        parser.add_argument("--data", default=None, help="Dataset folder (relative to the datasets folder, or absolute).")
        parser.add_argument("--json", dest="json_file", default=None, metavar="FILE", help="Also write every metric as JSON to FILE.")

    def handle(self, *args, version, data, json_file, **options):
        model_version = self.model_version(version)
        try:
            run = services.start_evaluation(model_version, data_dir=data, enqueue=False, allow_outside_root=True)
        except services.EvaluationError as error:
            raise CommandError(str(error)) from error
        run = services.execute_evaluation(run.pk)
        if run.evaluation is None:
            raise CommandError(run.failure_reason)
        evaluation = run.evaluation
        metrics = evaluation.metrics
        if model_version.trained_on_synthetic_data:
            self.stdout.write(self.style.WARNING(f"DEMO: {model_version.label} was trained on synthetic images; its results have no clinical meaning."))
        self.stdout.write(f"{model_version.label} ({model_version.backbone} {model_version.input_size}px, threshold {model_version.threshold:.3f}) "
                          f"on {evaluation.dataset_path}, n={evaluation.n_images}, fingerprint {evaluation.dataset_fingerprint[:12]}")
        for _key, label, figure in selectors.evaluation_figures(metrics):
            self.stdout.write(f"  {label:<12} {format_metric(figure, digits=3)}")
        for source, figures in (metrics.get("per_source") or {}).items():
            self.stdout.write(f"  source {source}: n={figures.get('n')}, " + ", ".join(
                f"{name} {format_metric(selectors.figure(figures.get(name)), digits=3)}" for name in ("sensitivity", "specificity")
            ))
        if json_file:
            with open(json_file, "w") as handle:
                handle.write(json.dumps({"version": model_version.pk, "evaluation": evaluation.pk, "dataset": evaluation.dataset_path,
                                          "demo": model_version.trained_on_synthetic_data, "metrics": metrics}, indent=2, sort_keys=True))
            self.stdout.write(f"Wrote {json_file}")

