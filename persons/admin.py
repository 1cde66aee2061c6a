from django.contrib import admin

from persons.models import Person


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["display_name", "owner", "time_zone", "preferred_unit", "created_at"]
    list_filter = ["preferred_unit", "time_zone"]
    search_fields = ["display_name", "owner__username", "owner__email"]
    date_hierarchy = "created_at"
    raw_id_fields = ["owner"]
