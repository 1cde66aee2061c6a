from django.urls import path

from observations import api

urlpatterns = [
    path("observations/", api.ObservationListCreateView.as_view(), name="api-observations"),
    path("observations/import/", api.ObservationImportView.as_view(), name="api-observations-import"),
    path("observations/<int:pk>/", api.ObservationDetailView.as_view(), name="api-observation-detail"),
    path("treatments/", api.TreatmentListCreateView.as_view(), name="api-treatments"),
    path("treatments/<int:pk>/", api.TreatmentDetailView.as_view(), name="api-treatment-detail"),
    path("imports/", api.ImportListView.as_view(), name="api-imports"),
    path("imports/<int:pk>/", api.ImportDetailView.as_view(), name="api-import-detail"),
    path("fhir/Bundle", api.FHIRBundleView.as_view(), name="api-fhir-bundle"),
    path("fhir/Observation", api.FHIRObservationSearchView.as_view(), name="api-fhir-observation-search"),
    path("fhir/MedicationAdministration", api.FHIRMedicationAdministrationSearchView.as_view(),
         name="api-fhir-medication-administration-search"),
]
