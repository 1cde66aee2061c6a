"""Each importer on a fixture in its vendor's exact layout, end to end into PostgreSQL."""

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command

from observations.importers import detect_format, decode_text, parse_bytes
from observations.models import ImportBatch, Observation
from observations.services import import_file
from observations.units import MGDL_PER_MMOLL, from_mgdl, mgdl_to_mmoll, mmoll_to_mgdl, to_mgdl
from observations.validation import ImportRejected

UTC = dt.timezone.utc


def fixture_bytes(fixtures_dir, name, person=None) -> bytes:
    data = (fixtures_dir / name).read_bytes()
    if person is not None:
        data = data.replace(b"PATIENT_ID", str(person.pk).encode())
    return data


def readings(person):
    return list(Observation.objects.for_person(person).order_by("effective_at"))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dexcom_clarity_g6_mgdl.csv", "dexcom"),
        ("dexcom_clarity_g7_mmol.csv", "dexcom"),
        ("libreview_us_mgdl.csv", "libre"),
        ("libreview_eu_mmol.csv", "libre"),
        ("nightscout_entries.json", "nightscout"),
        ("fhir_bundle_collection.json", "fhir"),
        ("fhir_bundle_transaction.json", "fhir"),
        ("plain_readings.csv", "csv"),
        ("plain_readings_semicolon_mmol.csv", "csv"),
    ],
)
def test_auto_detection_recognises_each_vendor_layout(fixtures_dir, name, expected):
    assert detect_format(decode_text((fixtures_dir / name).read_bytes())) == expected


def test_dexcom_clarity_g6(person, fixtures_dir):
    """Header block skipped, Low/High become the device limits with the flag, carbs and insulin
    rows counted as skipped, the calibration stored as a blood reading, local times in the
    person's zone (Europe/Berlin, CEST in May)."""
    result = import_file(person, fixture_bytes(fixtures_dir, "dexcom_clarity_g6_mgdl.csv"))
    assert result.format == "dexcom"
    assert (result.batch.n_created, result.batch.n_duplicates, result.batch.n_skipped) == (13, 0, 2)
    assert result.skipped_reasons == {"Dexcom Carbs event": 1, "Dexcom Insulin event": 1}
    rows = readings(person)
    first = rows[0]
    assert first.effective_at == dt.datetime(2025, 5, 1, 6, 0, 12, tzinfo=UTC)
    assert (first.value_mg_dl, first.original_unit, first.code, first.kind) == (112, "mg/dL", "99504-3", "cgm")
    assert first.source_identifier == "11"
    assert first.device == "Dexcom G6 Mobile App"
    highs = [r for r in rows if r.at_sensor_limit and r.value_mg_dl == 400]
    lows = [r for r in rows if r.at_sensor_limit and r.value_mg_dl == 40]
    assert len(highs) == 2 and len(lows) == 1
    calibration = [r for r in rows if r.kind == "blood"]
    assert len(calibration) == 1 and calibration[0].code == "41653-7" and calibration[0].value_mg_dl == 160


def test_dexcom_clarity_g7_mmol(person, fixtures_dir):
    result = import_file(person, fixture_bytes(fixtures_dir, "dexcom_clarity_g7_mmol.csv"))
    rows = readings(person)
    assert result.batch.n_created == 5
    assert rows[0].original_value == 6.1 and rows[0].original_unit == "mmol/L"
    assert rows[0].value_mg_dl == pytest.approx(6.1 * MGDL_PER_MMOLL)
    assert rows[0].code == "105272-9"
    assert rows[-1].at_sensor_limit and rows[-1].value_mg_dl == 40


def test_libreview_us_mgdl_with_bom_metadata_line_and_record_types(person, fixtures_dir):
    data = fixture_bytes(fixtures_dir, "libreview_us_mgdl.csv")
    assert data.startswith(b"\xef\xbb\xbf")  # the fixture keeps LibreView's BOM
    result = import_file(person, data)
    assert result.format == "libre"
    # 8 historic + 1 scan (CGM) + 1 strip (blood); food, insulin and note rows skipped
    assert result.batch.n_created == 10
    assert result.skipped_reasons == {
        "Libre food record": 1,
        "Libre insulin record": 1,
        "Libre note/exercise record": 1,
    }
    rows = readings(person)
    # "05-01-2025 07:59 AM" (US month-first, 12-hour clock) in Europe/Berlin = 05:59 UTC
    assert rows[0].effective_at == dt.datetime(2025, 5, 1, 5, 59, tzinfo=UTC)
    assert rows[0].device == "FreeStyle LibreLink"
    pm = [r for r in rows if r.effective_at == dt.datetime(2025, 5, 1, 11, 15, tzinfo=UTC)]
    assert pm and pm[0].value_mg_dl == 143  # 01:15 PM
    assert sum(r.kind == "cgm" for r in rows) == 9
    strip = [r for r in rows if r.kind == "blood"]
    assert len(strip) == 1 and strip[0].value_mg_dl == 181


def test_libreview_eu_mmol(person, fixtures_dir):
    result = import_file(person, fixture_bytes(fixtures_dir, "libreview_eu_mmol.csv"))
    rows = readings(person)
    assert result.batch.n_created == 7
    # "13-11-2024 06:05" is day-first; CET (UTC+1) in November
    assert rows[-2].effective_at == dt.datetime(2024, 11, 13, 5, 5, tzinfo=UTC)
    assert rows[-2].original_value == 4.4 and rows[-2].value_mg_dl == pytest.approx(79.2)
    assert rows[-1].kind == "blood" and rows[-1].code == "14743-9"


def test_nightscout_entries(person, fixtures_dir):
    result = import_file(person, fixture_bytes(fixtures_dir, "nightscout_entries.json"))
    assert result.format == "nightscout"
    assert result.batch.n_created == 7
    assert result.skipped_reasons == {"Nightscout cal entry": 1, "Nightscout sensor status code": 1}
    rows = readings(person)
    assert rows[0].effective_at == dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC)  # from `date` (ms)
    assert rows[0].source_identifier == "6655f0c2a1b2c3d4e5f60001"
    assert rows[0].device == "xDrip-DexcomG6"
    mbg = [r for r in rows if r.kind == "blood"]
    assert len(mbg) == 1 and mbg[0].value_mg_dl == 127
    # the entry without `date` falls back to dateString; sgv 39 is the receiver's LOW
    low = [r for r in rows if r.effective_at == dt.datetime(2024, 5, 2, 3, 0, tzinfo=UTC)][0]
    assert low.at_sensor_limit and low.value_mg_dl == 40


@pytest.mark.parametrize("name, n", [("fhir_bundle_collection.json", 4), ("fhir_bundle_transaction.json", 3)])
def test_fhir_bundle_files(person, fixtures_dir, name, n):
    result = import_file(person, fixture_bytes(fixtures_dir, name, person))
    assert result.format == "fhir" and result.batch.n_created == n
    rows = readings(person)
    assert all(r.source_identifier for r in rows)


def test_fhir_collection_details(person, fixtures_dir):
    import_file(person, fixture_bytes(fixtures_dir, "fhir_bundle_collection.json", person))
    by_id = {r.source_identifier: r for r in readings(person)}
    assert by_id["cgm-2"].effective_at == dt.datetime(2024, 5, 2, 10, 20, tzinfo=UTC)  # +02:00 kept
    assert by_id["cgm-2"].original_unit == "mmol/L" and by_id["cgm-2"].code == "105272-9"
    assert by_id["cgm-3"].at_sensor_limit  # valueQuantity.comparator "<"
    assert by_id["bg-1"].kind == "blood" and by_id["bg-1"].code == "41653-7"
    assert by_id["cgm-1"].device == "Dexcom G7"


def test_plain_csv_naive_times_in_person_zone_and_mixed_units(person, fixtures_dir):
    import_file(person, fixture_bytes(fixtures_dir, "plain_readings.csv"))
    rows = readings(person)
    assert [r.effective_at for r in rows] == [
        dt.datetime(2025, 2, 1, 7, m, tzinfo=UTC) for m in (0, 5, 10, 15)
    ]
    assert rows[1].original_unit == "mmol/L" and rows[1].value_mg_dl == pytest.approx(6.3 * 18)
    assert rows[3].original_unit == "mg/dL"  # empty unit cell = mg/dL


def test_plain_csv_semicolons_decimal_commas_and_unit_in_header(person, fixtures_dir):
    import_file(person, fixture_bytes(fixtures_dir, "plain_readings_semicolon_mmol.csv"))
    rows = readings(person)
    assert [r.original_value for r in rows] == [6.1, 6.4, 6.8]
    assert {r.original_unit for r in rows} == {"mmol/L"}


def test_naive_times_follow_dst_including_the_repeated_autumn_hour(person):
    """Europe/Berlin leaves CEST on 2025-10-26 at 03:00 -> 02:00; a 5-minute series crossing
    that hour has every naive wall time 02:00-02:55 twice and must map to distinct instants."""
    # 3 hours of real time from 23:30 UTC, every 5 minutes
    expected = [dt.datetime(2025, 10, 25, 23, 30, tzinfo=UTC) + dt.timedelta(minutes=5 * k) for k in range(36)]
    # wall clock: 01:30 .. 02:55 (CEST), then 02:00 .. 02:55 again (CET)
    times = [dt.datetime(2025, 10, 26, 1, 30) + dt.timedelta(minutes=5 * k) for k in range(18)]
    times += [dt.datetime(2025, 10, 26, 2, 0) + dt.timedelta(minutes=5 * k) for k in range(18)]
    lines = [f"{t:%Y-%m-%dT%H:%M:%S},120" for t in times]
    result = import_file(person, ("time,value\n" + "\n".join(lines)).encode())
    assert result.batch.n_created == 36 and result.batch.n_duplicates == 0
    assert [r.effective_at for r in readings(person)] == expected


def test_unit_conversion_both_ways_uses_the_one_constant():
    assert MGDL_PER_MMOLL == 18.0
    assert mmoll_to_mgdl(5.5) == pytest.approx(99.0)
    assert mgdl_to_mmoll(99.0) == pytest.approx(5.5)
    assert to_mgdl(10, "mmol/L") == pytest.approx(180.0)
    assert to_mgdl(180, "mg/dL") == 180.0
    assert from_mgdl(180.0, "mmol/L") == 10.0
    assert from_mgdl(99.4, "mg/dL") == 99
    for value in (2.2, 3.9, 10.0, 27.8):
        assert mgdl_to_mmoll(mmoll_to_mgdl(value)) == pytest.approx(value)


def test_mmol_reading_round_trips_through_the_store(person, api):
    response = api.post(
        "/api/observations/",
        {"effective_at": "2025-01-01T10:00:00Z", "value": 7.2, "unit": "mmol/L"},
        format="json",
    )
    assert response.status_code == 201
    obs = Observation.objects.get(person=person)
    assert obs.value_mg_dl == pytest.approx(129.6)
    assert obs.original_value == 7.2 and obs.original_unit == "mmol/L"
    assert from_mgdl(obs.value_mg_dl, "mmol/L") == 7.2


def test_reimport_is_idempotent(person, fixtures_dir):
    data = fixture_bytes(fixtures_dir, "dexcom_clarity_g6_mgdl.csv")
    first = import_file(person, data).batch
    second = import_file(person, data).batch
    assert (first.n_created, first.n_duplicates) == (13, 0)
    assert (second.n_created, second.n_duplicates) == (0, 13)
    assert Observation.objects.for_person(person).count() == 13


def test_parser_rejects_json_that_is_no_known_format():
    with pytest.raises(ImportRejected) as caught:
        parse_bytes(json.dumps({"hello": "world"}).encode())
    assert caught.value.errors[0].field == "file"


def test_import_cgm_command(person, fixtures_dir, capsys):
    path = fixtures_dir / "libreview_eu_mmol.csv"
    call_command("import_cgm", person.owner.username, str(path))
    out = capsys.readouterr().out
    assert "created 7, duplicates 0" in out
    call_command("import_cgm", person.owner.username, str(path), "--format", "libre")
    assert "created 0, duplicates 7" in capsys.readouterr().out
    assert ImportBatch.objects.for_person(person).count() == 2


def test_import_cgm_command_errors(person, fixtures_dir, tmp_path):
    with pytest.raises(CommandError, match="No person"):
        call_command("import_cgm", "nobody", str(fixtures_dir / "plain_readings.csv"))
    with pytest.raises(CommandError, match="not a readable file"):
        call_command("import_cgm", person.owner.username, str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("time,value\n2025-01-01T10:00:00,abc\n2025-01-01T10:05:00,-4\n")
    with pytest.raises(CommandError, match=r"row 2, value: 'abc' is not a number") as caught:
        call_command("import_cgm", person.owner.username, str(bad))
    assert "row 3, value: -4 is negative" in str(caught.value)
    with pytest.raises(CommandError, match="not a Dexcom Clarity export"):
        call_command("import_cgm", person.owner.username, str(fixtures_dir / "libreview_eu_mmol.csv"), "--format", "dexcom")
    with pytest.raises(CommandError, match="another patient"):
        call_command("import_cgm", person.owner.username, str(fixtures_dir / "fhir_bundle_collection.json"))
    assert not Observation.objects.exists()


def test_text_with_quotes_backslashes_and_braces_is_stored_verbatim(person):
    """The bulk insert sends text as PostgreSQL array literals; odd device names must survive."""
    device = 'Phone "Pixel", {test} \\ back\\slash, Müller'
    entries = [
        {"_id": 'id"1\\', "device": device, "date": 1714550400000, "sgv": 112, "type": "sgv"},
        {"_id": "id,{2}", "device": "", "date": 1714550700000, "sgv": 118, "type": "sgv"},
    ]
    import_file(person, json.dumps(entries).encode())
    rows = readings(person)
    assert rows[0].device == device and rows[0].source_identifier == 'id"1\\'
    assert rows[1].device == "" and rows[1].source_identifier == "id,{2}"


def test_plain_csv_with_separate_date_and_time_columns(person):
    content = b"Date,Time,Glucose (mg/dL)\n2025-02-01,08:00,110\n2025-02-01,08:05:30,115\n"
    result = import_file(person, content)
    assert result.format == "csv" and result.batch.n_created == 2
    assert readings(person)[1].effective_at == dt.datetime(2025, 2, 1, 7, 5, 30, tzinfo=UTC)
