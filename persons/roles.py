"""Staff roles. `create_person --staff` makes a model operator: a staff member in the "Model
operators" group, which holds exactly what running the model lifecycle needs — seeing model
versions, training jobs, rollouts, pins, the prediction log and realized accuracy; changing
rollouts; running the lifecycle actions (activate/roll back, archive, pin); unlocking a login
locked by too many failures. Not included: people's raw readings and imports, user accounts,
tokens. `--superuser` is a separate, explicit choice.

Permissions are named as "app_label.codename" strings so this module needs no upper app.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction

MODEL_OPERATORS = "Model operators"

MODEL_OPERATOR_PERMISSIONS = (
    "persons.view_person",
    "mlmodels.view_mlmodel",
    "mlmodels.activate_mlmodel",
    "mlmodels.archive_mlmodel",
    "mlmodels.pin_mlmodel",
    "mlmodels.view_trainingjob",
    "mlmodels.view_rollout",
    "mlmodels.add_rollout",
    "mlmodels.change_rollout",
    "mlmodels.view_rolloutevent",
    "mlmodels.view_modelpin",
    "mlmodels.view_servingstate",
    "predictions.view_predictionlog",
    "predictions.view_modelperformance",
    "predictions.view_predictionfeedback",
    "django_q.view_task",
    "django_q.view_success",
    "django_q.view_failure",
    "django_q.view_schedule",
    "axes.view_accessattempt",
    "axes.delete_accessattempt",  # deleting the attempts unlocks the account/address
    "axes.view_accessfailurelog",
)


@transaction.atomic
def model_operators_group() -> Group:
    """The group with exactly MODEL_OPERATOR_PERMISSIONS (repaired if it drifted)."""
    group, _ = Group.objects.get_or_create(name=MODEL_OPERATORS)
    wanted = []
    for name in MODEL_OPERATOR_PERMISSIONS:
        app_label, codename = name.split(".")
        wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    group.permissions.set(wanted)
    return group
