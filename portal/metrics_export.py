"""Where Prometheus reads the metrics (portal.metrics): the web server's /metrics, and a small
server of their own in a worker or the DICOM listener (PORTAL_METRICS_BIND). Both answer only
`Authorization: Bearer <PORTAL_METRICS_TOKEN>`.

The web server also reports what the database knows at the moment of the scrape: jobs waiting and
running per queue (what more workers would take away) and each live site's drift alerts. Only the
web server does, so a figure is not counted once per worker."""
import hmac
import logging
import os
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, make_wsgi_app, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, ThreadingWSGIServer

logger = logging.getLogger(__name__)

DRIFT_CACHE_SECONDS = 300  # the drift watch reads every prediction of a site: not on every scrape


def token_matches(authorization):
    """True for `Bearer <METRICS_TOKEN>`; always False while no token is set."""
    expected = settings.METRICS_TOKEN
    scheme, _, given = (authorization or "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


class _ThisProcess:
    """The figures of this process alone, when there is no PROMETHEUS_MULTIPROC_DIR."""

    def collect(self):
        yield from REGISTRY.collect()


def role_registry():
    """What every process of this role counted (PROMETHEUS_MULTIPROC_DIR), else this process's."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    return registry


class QueueCollector:
    def collect(self):
        from jobs.lifecycle import job_models

        waiting = GaugeMetricFamily("portal_queue_depth", "Jobs queued and not yet claimed by a worker, per queue.", labels=["queue"])
        running = GaugeMetricFamily("portal_jobs_running", "Jobs a worker is running, per queue.", labels=["queue"])
        counts = {}
        for model in job_models():
            by_status = dict(model.objects.filter(status__in=[model.Status.QUEUED, model.Status.RUNNING])
                             .order_by().values_list("status").annotate(n=Count("pk")))
            queued, busy = counts.get(model.queue, (0, 0))
            counts[model.queue] = (queued + by_status.get(model.Status.QUEUED, 0), busy + by_status.get(model.Status.RUNNING, 0))
        for queue, (queued, busy) in sorted(counts.items()):
            waiting.add_metric([queue], queued)
            running.add_metric([queue], busy)
        yield waiting
        yield running


class DriftCollector:
    def collect(self):
        alerts = GaugeMetricFamily("portal_site_drift_alerts", "Figures of a live site's latest week outside its silent "
                                   "period's control limits (the drift watch; refreshed every 5 minutes).", labels=["site"])
        for site, count in cache.get_or_set("portal-metrics-drift", latest_drift_alerts, DRIFT_CACHE_SECONDS):
            alerts.add_metric([site], count)
        yield alerts


def latest_drift_alerts():
    from diagnosis import site_drift
    from diagnosis.models import Site

    counts = []
    for site in Site.objects.filter(mode=Site.Mode.LIVE).select_related("mode_decision").order_by("code"):
        live_weeks = [week for week in site_drift.watch(site)["weeks"] if week["live"]]
        latest = live_weeks[-1]["figures"].values() if live_weeks else []
        counts.append((site.code, sum(figure["alert"] for figure in latest)))
    return counts


@login_not_required
@never_cache
def metrics_view(request):
    """404 without the token, as if there were no such address."""
    if not token_matches(request.headers.get("Authorization")):
        raise Http404
    registry = role_registry()
    registry.register(QueueCollector())
    registry.register(DriftCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per scrape would drown the worker's log
        pass


def _token_checked(app):
    def checked(environ, start_response):
        if not token_matches(environ.get("HTTP_AUTHORIZATION")):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found.\n"]
        return app(environ, start_response)

    return checked


def serve_in_background():
    """In a worker or the DICOM listener: serve this role's metrics at METRICS_BIND (host:port) from
    a thread; nothing without METRICS_BIND, and a warning instead without a token. Returns the server."""
    if not settings.METRICS_BIND:
        return None
    if not settings.METRICS_TOKEN:
        logger.warning("PORTAL_METRICS_BIND is set but PORTAL_METRICS_TOKEN is not: metrics are not served.")
        return None
    host, _, port = settings.METRICS_BIND.rpartition(":")
    server = make_server(host.strip("[]") or "0.0.0.0", int(port), _token_checked(make_wsgi_app(role_registry())),
                         ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    logger.info("Metrics served at %s (bearer token required)", settings.METRICS_BIND)
    return server
