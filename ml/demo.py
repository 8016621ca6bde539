"""The demo model a fresh install starts with: trained by the project's own training code on
generated images, so the portal works end to end before anyone trains on real X-rays. Its
record says synthetic, and every page and API answer that shows its output says DEMO.

It is trained as a training job run in this process, exactly as `manage.py train` does."""
from django.conf import settings

from . import services
from .models import ModelVersion, TrainingJob

DEMO_DATASET = {"n_per_class": 40, "image_size": 128, "seed": 7}


def ensure_demo_model(progress=print):
    """Train, register and activate the demo model unless some model version already exists."""
    if ModelVersion.objects.exists():
        return None
    from ml.engine import TrainConfig, make_synthetic_dataset

    dataset_dir = settings.DATASETS_ROOT / "synthetic-demo"
    if not dataset_dir.exists():
        make_synthetic_dataset(dataset_dir, **DEMO_DATASET)
    config = TrainConfig.demo()
    progress(f"Training the demo model ({config.backbone}, {config.image_size}px, {config.epochs} epochs) on generated images...")
    job = services.start_training_job(
        actor=None, dataset=str(dataset_dir), preset="demo", backbone=config.backbone, epochs=config.epochs,
        image_size=config.image_size, weights=config.weights or "none", batch_size=config.batch_size, seed=config.seed,
        enqueue=False, allow_outside_root=True,
    )
    job = services.execute_training_job(job.pk, on_progress=lambda line: progress(f"  {line}"))
    if job is None or job.status != TrainingJob.Status.SUCCEEDED:
        raise RuntimeError(f"The demo model could not be trained: {getattr(job, 'failure_reason', 'the job did not run')}")
    # A demo model fails every safeguard by design: it is installed by an explicit, recorded override.
    services.promote_version(job.version.pk, reason="Demo model installed by setup", override=True)
    return ModelVersion.objects.get(pk=job.version.pk)
