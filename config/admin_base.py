from django.contrib import admin


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
