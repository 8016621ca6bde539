"""Promote and roll back: one atomic switch, confirmed and recorded, exactly one active version."""
import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from ml import model_store, selectors, services
from ml.models import ModelVersion, Promotion
from portal.file_storage import named


def active_ids():
    return list(ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("pk", flat=True))


@pytest.mark.django_db
def test_promote_asks_for_confirmation_then_switches_and_records_who(admin_client, administrator, make_version):
    first, second = make_version(auc=0.8), make_version(auc=0.9)
    services.promote_version(first.pk, reason="test", override=True)
    page = admin_client.get(reverse("ml:version_promote", args=[second.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert f"Promote {second.label}?" in text and f"instead of <strong>{first.label}</strong>" in text
    assert active_ids() == [first.pk]  # looking at the confirmation changes nothing

    response = admin_client.post(reverse("ml:version_promote", args=[second.pk]), {"reason": "better AUC", "override": "on"})
    assert response.status_code == 302
    assert active_ids() == [second.pk]
    first.refresh_from_db()
    assert first.status == ModelVersion.Status.RETIRED
    promotion = Promotion.objects.first()
    assert (promotion.from_version, promotion.to_version, promotion.actor, promotion.reason, promotion.is_rollback) == (
        first, second, administrator, "better AUC", False
    )
    assert selectors.active_version() == second


@pytest.mark.django_db
def test_rollback_is_a_promote_of_an_older_version_and_says_so(admin_client, administrator, make_version):
    first, second = make_version(), make_version()
    services.promote_version(first.pk, reason="test", override=True)
    services.promote_version(second.pk, reason="test", override=True)
    page = admin_client.get(reverse("ml:version_promote", args=[first.pk])).content.decode()
    assert f"Roll back to {first.label}?" in page
    assert f"Roll back to {first.label}" in admin_client.get(reverse("ml:version_list")).content.decode()
    admin_client.post(reverse("ml:version_promote", args=[first.pk]), {"reason": "v2 misses cases", "override": "on"})
    assert active_ids() == [first.pk]
    rollback = Promotion.objects.first()
    assert rollback.is_rollback and rollback.from_version == second and rollback.actor == administrator
    history = admin_client.get(reverse("ml:version_list")).content.decode()
    assert "rollback" in history and "v2 misses cases" in history


@pytest.mark.django_db
def test_promoting_the_active_version_or_a_broken_artifact_is_refused(admin_client, make_version):
    good, broken = make_version(), make_version()
    services.promote_version(good.pk, reason="test", override=True)
    response = admin_client.post(reverse("ml:version_promote", args=[good.pk]), {"reason": "again", "override": "on"})
    assert f"{good.label} is already the active version." in response.content.decode()

    path = settings_path(broken)
    path.write_bytes(b"altered")
    response = admin_client.post(reverse("ml:version_promote", args=[broken.pk]), {"reason": "test", "override": "on"})
    assert "does not match its recorded sha256" in response.content.decode()
    path.unlink()
    if model_store.is_bucket():  # gone from the store itself, not only from this host's cached copy
        named(model_store.MODELS).delete(broken.artifact_path)
    with pytest.raises(services.PromotionError, match="missing"):
        services.promote_version(broken.pk, reason="test", override=True)
    assert active_ids() == [good.pk] and Promotion.objects.count() == 1


def settings_path(version):
    from ml import runtime

    return runtime.artifact_path(version)


@pytest.mark.django_db
def test_the_database_itself_refuses_a_second_active_version(make_version):
    first, second = make_version(), make_version()
    services.promote_version(first.pk, reason="test", override=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(status=ModelVersion.Status.ACTIVE)
    assert active_ids() == [first.pk]


def promote_concurrently(version_ids):
    """Each thread has its own database connection; all start promoting at the same moment."""
    barrier = threading.Barrier(len(version_ids))
    outcomes = {}

    def promote(version_id):
        try:
            barrier.wait(timeout=10)
            outcomes[version_id] = services.promote_version(version_id, reason=f"thread for {version_id}", override=True)
        except Exception as error:  # noqa: BLE001 - the outcome is asserted below
            outcomes[version_id] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=promote, args=(version_id,)) for version_id in version_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotes_leave_exactly_one_active_version(make_version):
    versions = [make_version() for _ in range(4)]
    services.promote_version(versions[0].pk, reason="test", override=True)
    for round_number in range(6):
        idle = [version.pk for version in versions if version.pk not in active_ids()]
        contenders = idle[round_number % 3:] + idle[:round_number % 3]
        contenders = contenders[:2]
        outcomes = promote_concurrently(contenders)
        assert all(isinstance(outcome, Promotion) for outcome in outcomes.values()), outcomes
        assert len(active_ids()) == 1
        last, before = Promotion.objects.order_by("-id")[:2]
        # They queued up: the second promote retired what the first one made active.
        assert last.from_version_id == before.to_version_id
        assert active_ids() == [last.to_version_id]


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotes_of_the_same_version_switch_once(make_version):
    current, target = make_version(), make_version()
    services.promote_version(current.pk, reason="test", override=True)
    barrier = threading.Barrier(2)
    outcomes = []

    def promote():
        try:
            barrier.wait(timeout=10)
            outcomes.append(services.promote_version(target.pk, reason="test", override=True))
        except services.PromotionError as error:
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=promote) for _ in range(2)]
    [thread.start() for thread in threads]
    [thread.join(timeout=60) for thread in threads]
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["Promotion", "PromotionError"]
    assert active_ids() == [target.pk] and Promotion.objects.filter(to_version=target).count() == 1
