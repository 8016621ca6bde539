"""What every API view shares: the role permissions and the documented errors."""
from .permissions import HasRolePermission
from .schema import ApiSchema


class ApiViewMixin:
    permission_classes = [HasRolePermission]
    schema = ApiSchema()
