"""Treatments: insulin, carbohydrates, steps and heart rate, per person, as records of their own.

- `codes`: the kinds, their canonical units, bounds and FHIR alignment (carbohydrate intake,
  steps and heart rate are Observations with LOINC 9059-7 / 55423-8 / 8867-4; insulin is a
  MedicationAdministration, see there why).
- `models`: the `Treatment` table (imported by observations.models so Django registers it).
- `validation`: the one validation path every way in shares (no database), like readings'.
- `services`: storing a checked batch idempotently, deleting, and `treatments_between`, the
  selector features and models read.

glucast records treatments only as inputs of the forecast: it never suggests a dose, and no
what-if on future insulin or meals is ever accepted.
"""
