"""The light side of sending results back to a node (pacs.sending runs the job): a send queued
with the result. Loaded by every process (the receiver is connected when the app loads), so it
imports neither highdicom nor the network libraries."""
from pydicom.uid import generate_uid

from diagnosis.models import Site
from jobs import lifecycle

from .models import ReceivedInstance, ResultSend


def queue_sends(sender, predictions, **kwargs):
    """diagnosis.inference.predictions_recorded: inside the transaction recording the results, one
    send per result whose film came from a node that takes results, at a live site."""
    by_scan = {prediction.scan_id: prediction for prediction in predictions}
    received = ReceivedInstance.objects.filter(scan_id__in=by_scan, node__receives_results=True,
                                               scan__patient__site__mode=Site.Mode.LIVE).select_related("node")
    sends = [ResultSend(prediction=by_scan[each.scan_id], node=each.node, ae_title=each.node.ae_title,
                        series_instance_uid=generate_uid(), sc_instance_uid=generate_uid(), sr_instance_uid=generate_uid())
             for each in received]
    if sends:
        ResultSend.objects.bulk_create(sends)
        lifecycle.enqueue_on_commit(*sends)
    return sends
