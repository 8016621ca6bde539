"""API tokens (django-rest-knox): ask for one with a username and password, list yours, revoke one.

Tokens are stored hashed and expire (REST_KNOX TOKEN_TTL, PORTAL_API_TOKEN_HOURS). A failed password
here counts toward the same django-axes lockout as the login pages, and the endpoint is throttled.
Changing a user's password or deactivating them revokes every token they hold (diagnosis/signals.py)."""
from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from diagnosis.auditing import client_ip
from diagnosis.models import AuditEvent
from diagnosis.services import record_audit
from portal.errors import locked_out

from .errors import refusal
from .schema import ApiSchema


class TokenLimitReached(Exception):
    pass


def tokens_of(user):
    """The user's API tokens that still work, newest first."""
    return AuthToken.objects.filter(user=user, expiry__gt=timezone.now()).order_by("-created")


def issue_token(user, *, via="web", ip_address=None):
    """A new token for the user: (the stored record, the secret to show once)."""
    limit = knox_settings.TOKEN_LIMIT_PER_USER
    if limit is not None and tokens_of(user).count() >= limit:
        raise TokenLimitReached(f"You already hold {limit} API tokens; revoke one you no longer use first.")
    instance, token = AuthToken.objects.create(user)
    record_audit(user, AuditEvent.Action.TOKEN_CREATED, via=via, ip_address=ip_address, details={"token": instance.token_key, "expiry": instance.expiry.isoformat() if instance.expiry else None})
    return instance, token


def own_tokens_named(user, token_id):
    """The user's token with this id (its first characters, letters and digits); none for anything
    else, which the database would not take as text (a NUL byte) or could not match anyway."""
    token_id = str(token_id or "")
    if not (token_id.isascii() and token_id.isalnum()):
        return AuthToken.objects.none()
    return AuthToken.objects.filter(user=user, token_key=token_id)


def revoke_token(user, token_id, *, via="web", ip_address=None):
    """Revoke one of the user's own tokens; True when there was one."""
    deleted, _ = own_tokens_named(user, token_id).delete()
    if deleted:
        record_audit(user, AuditEvent.Action.TOKEN_REVOKED, via=via, ip_address=ip_address, details={"token": token_id})
    return bool(deleted)


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="token_key", help_text="The token's first characters: name it to revoke it.")

    class Meta:
        model = AuthToken
        fields = ["id", "created", "expiry"]


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`. Shown only once.")

    class Meta(TokenSerializer.Meta):
        fields = ["id", "token", "created", "expiry"]


class TokenCreate(APIView):
    """Exchange a username and password for a new API token that expires."""

    schema = ApiSchema()

    authentication_classes = []  # The credentials are in the body.
    permission_classes = [AllowAny]
    throttle_scope = "token"

    @extend_schema(request=CredentialsSerializer, responses={201: NewTokenSerializer})
    def post(self, request):
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        # The Django request, not DRF's: django-axes records the failure and the lockout on it.
        django_request = request._request
        user = authenticate(django_request, username=credentials.validated_data["username"], password=credentials.validated_data["password"])
        if getattr(django_request, "axes_locked_out", False):
            return locked_out(django_request)
        if user is None:
            return refusal("The username or password is not correct.", code="invalid_credentials")
        try:
            instance, token = issue_token(user, via="api", ip_address=client_ip(django_request))
        except TokenLimitReached as refused:
            return refusal(str(refused), code="too_many_tokens")
        instance.token = token
        return Response(NewTokenSerializer(instance).data, status=status.HTTP_201_CREATED)


class TokenList(generics.ListAPIView):
    """Your own API tokens that have not expired (never their secret part)."""

    schema = ApiSchema()

    serializer_class = TokenSerializer

    def get_queryset(self):
        return tokens_of(self.request.user)


class TokenRevoke(generics.DestroyAPIView):
    """Revoke one of your own tokens by its id."""

    schema = ApiSchema()

    serializer_class = TokenSerializer
    lookup_field = "token_key"
    lookup_url_kwarg = "token_id"

    def get_queryset(self):
        return own_tokens_named(self.request.user, self.kwargs["token_id"])

    def perform_destroy(self, instance):
        revoke_token(self.request.user, instance.token_key, via="api", ip_address=client_ip(self.request))
