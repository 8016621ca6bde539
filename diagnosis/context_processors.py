from . import roles as role_rules


def roles(request):
    user = request.user
    return {
        "is_administrator": role_rules.is_administrator(user),
        "is_clinical_staff": role_rules.is_clinical_staff(user),
    }
