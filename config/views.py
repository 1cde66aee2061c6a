"""Pages of the site layer: whole-account deletion (it reaches into every app)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from config.account import delete_all_my_data
from config.forms import DeleteAllForm
from persons.services import person_for


@login_required
@require_http_methods(["GET", "POST"])
def delete_all(request):
    person = person_for(request.user)
    form = DeleteAllForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        delete_all_my_data(person)
        messages.success(request, _("All your data was deleted. Your login remains."))
        return redirect("data")
    status = 400 if request.method == "POST" else 200
    return render(request, "account/delete_all.html", {"form": form, "person": person}, status=status)
