"""What every API view shares: the role permissions, the documented errors and the paginator."""
from .permissions import HasRolePermission
from .schema import ApiSchema


class ApiViewMixin:
    permission_classes = [HasRolePermission]
    schema = ApiSchema()
