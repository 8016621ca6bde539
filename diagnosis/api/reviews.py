"""Predictions with their model version, and clinicians' reviews of them (one current review per
clinician per prediction; a revision keeps the earlier one as history)."""
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from diagnosis import ai_visibility, selectors, services
from diagnosis.auditing import AuditedApiList, audit, client_ip, ids
from diagnosis.models import AuditEvent, Prediction

from . import errors
from .base import ApiViewMixin
from .serializers import PredictionSerializer, ReviewSerializer


def visible_prediction(request, prediction_id):
    try:
        return selectors.prediction_with_reviews_for(request.user, prediction_id)
    except Prediction.DoesNotExist:
        raise Http404 from None


class PredictionDetail(ApiViewMixin, generics.RetrieveAPIView):
    """One AI result: label, probability, threshold, and the model version (its label, DEMO flag and test figures)."""

    serializer_class = PredictionSerializer
    permission_required = {"GET": "diagnosis.view_prediction"}

    def get_object(self):
        prediction = visible_prediction(self.request, self.kwargs["prediction_id"])
        if not ai_visibility.ai_result_shown(self.request.user, prediction.scan):
            raise PermissionDenied(ai_visibility.withheld_sentence(prediction.scan.patient.site), code="ai_result_withheld")
        audit(self.request, AuditEvent.Action.PREDICTION_VIEWED, patient=prediction.scan.patient, scan=prediction.scan, via="api",
              details={"prediction": prediction.pk})
        return prediction


class PredictionReviews(AuditedApiList, ApiViewMixin, generics.ListCreateAPIView):
    """Reviews of one AI result, newest first (`current` false for revised ones). POST records your
    review, or revises it if you reviewed this result before. On a film you read blind (a silent
    site), only your own until you have saved one (ai_visibility.reviews_shown)."""

    serializer_class = ReviewSerializer
    permission_required = {"GET": "diagnosis.view_prediction", "POST": "diagnosis.add_review"}
    audit_action = AuditEvent.Action.REVIEWS_LISTED

    def prediction(self):
        if not hasattr(self, "_prediction"):
            self._prediction = visible_prediction(self.request, self.kwargs["prediction_id"])
        return self._prediction

    def get_queryset(self):
        prediction = self.prediction()
        reviews = selectors.reviews_of(prediction)
        if not ai_visibility.sees_colleagues_findings(self.request.user, prediction.scan, prediction):
            return reviews.filter(reviewer=self.request.user)  # on a film read blind, others' findings wait for yours
        return reviews

    def get_serializer_context(self):
        withheld = not ai_visibility.ai_result_shown(self.request.user, self.prediction().scan)
        return {**super().get_serializer_context(), "ai_result_withheld": withheld}

    def audited_patient(self):
        return self.prediction().scan.patient

    def audit_details(self, shown):
        return {"prediction": self.prediction().pk, "reviews": ids(shown)}

    @extend_schema(responses={
        201: OpenApiResponse(ReviewSerializer, description="Your first review of this result."),
        200: OpenApiResponse(ReviewSerializer, description="Your review, revised; the earlier one is kept with current false."),
    })
    def post(self, request, *args, **kwargs):
        prediction = self.prediction()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            review, revised = services.review_prediction(actor=request.user, prediction=prediction, via="api", ip_address=client_ip(request),
                                                         **serializer.validated_data)
        except services.ReviewRefused as refusal:
            return errors.refusal(str(refusal))
        return Response(self.get_serializer(review).data, status=status.HTTP_200_OK if revised else status.HTTP_201_CREATED)
