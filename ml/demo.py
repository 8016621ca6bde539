"""The demo model a fresh install starts with: trained by the project's own training code on
generated images, so the portal works end to end before anyone trains on real X-rays. Its
record says synthetic, and every page and API answer that shows its output says DEMO."""
from django.conf import settings

from . import services
from .models import ModelVersion


def ensure_demo_model(progress=print):
    """Train, register and activate the demo model unless some model version already exists."""
    if ModelVersion.objects.exists():
        return None
    from ml.engine.synthetic import make_synthetic_dataset
    from ml.engine.train import TrainConfig, train

    dataset_dir = settings.DATASETS_ROOT / "synthetic-demo"
    if not dataset_dir.exists():
        make_synthetic_dataset(dataset_dir, **DEMO_DATASET)
    config = TrainConfig.demo()
    progress(f"Training the demo model ({config.backbone}, {config.image_size}px, {config.epochs} epochs) on generated images...")

    def report(epoch, total_epochs, metrics):
        figures = ", ".join(f"{name} {value:.3f}" for name, value in sorted(metrics.items()) if isinstance(value, float))
        progress(f"  epoch {epoch}/{total_epochs}: {figures}")

    result = train(dataset_dir, settings.MODEL_STORE_DIR / "demo", config, on_epoch_end=report)
    version = services.register_version(artifact_path=result.artifact_path, record=result.record)
    services.promote_version(version.pk, reason="Demo model installed by setup")
    return ModelVersion.objects.get(pk=version.pk)


DEMO_DATASET = {"n_per_class": 40, "image_size": 128, "seed": 7}
