"""Admin of the ground floor: the Person screen, and ReadOnlyAdmin, the base every app's admin uses
for rows that only services write (it lives here so apps can share it without importing upward)."""

from django.contrib import admin

from persons.forms import AdminLoginForm
from persons.models import Person

admin.site.login_form = AdminLoginForm  # a username longer than any account's is refused (persons.forms)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only services write (logs, sums, audit trails): the admin shows them.

    Set `allow_delete = False` where even deleting would falsify a record.
    """

    allow_delete = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.allow_delete and super().has_delete_permission(request, obj)


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["display_name", "owner", "time_zone", "preferred_unit", "created_at"]
    list_filter = ["preferred_unit", "time_zone"]
    search_fields = ["display_name", "owner__username", "owner__email"]
    date_hierarchy = "created_at"
    raw_id_fields = ["owner"]
