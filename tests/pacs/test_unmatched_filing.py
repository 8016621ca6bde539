"""The "Unmatched DICOM" pages: an instance the listener's intake (pacs.receiving.receive, called
directly, as the listener and STOW-RS call it) held as unmatched is listed for the people of its
node's site and administrators only, and filed to a patient, registered, or dismissed through the
real pages (Django's test client), into the same intake as every upload."""
import html
from datetime import date

import pytest

from diagnosis.models import AuditEvent, Patient, Scan
from pacs import receiving
from pacs.models import ReceivedInstance
from tests.conftest import signed_in, stored_files
from tests.pacs.conftest import radiograph


def text(page):
    return html.unescape(page.content.decode())


def trail(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_the_list_shows_the_header_to_the_site_s_clinicians_and_administrators_only(held, clinician, administrator, other_site_clinician, user_without_role):
    instance = held()
    assert (instance.outcome, instance.header_birth_date.isoformat(), instance.study_date.isoformat()) == ("unmatched", "1970-03-12", "2026-12-01")
    for user in (clinician, administrator):
        client = signed_in(user)
        page = text(client.get("/unmatched-dicom/"))
        for shown in ("ORTHANC", "MRN-4040", "MBEKI^Thabo", "1970-03-12", "2026-12-01", "No patient with record number MRN-4040 at St Elsewhere."):
            assert shown in page
        worklist = text(client.get("/"))
        assert "1 image received from PACS is waiting to be filed" in worklist and "Unmatched DICOM" in worklist
    # Another site's clinician sees neither the image nor that there is one.
    other = signed_in(other_site_clinician)
    assert "MRN-4040" not in text(other.get("/unmatched-dicom/"))
    worklist = text(other.get("/"))
    assert "Unmatched DICOM" not in worklist and "waiting to be filed" not in worklist
    assert other.get(f"/unmatched-dicom/{instance.pk}/").status_code == 404
    assert signed_in(user_without_role).get("/unmatched-dicom/").status_code == 403
    viewed = trail(AuditEvent.Action.DICOM_UNMATCHED_VIEWED)
    assert [(row.actor, row.details["instances"]) for row in viewed] == [(clinician, [str(instance.pk)]), (administrator, [str(instance.pk)]), (other_site_clinician, [])]


def test_filing_to_an_existing_patient_needs_a_reason_when_the_header_disagrees(held, clinician, patient, django_capture_on_commit_callbacks):
    instance = held()
    client = signed_in(clinician)
    detail = text(client.get(f"/unmatched-dicom/{instance.pk}/?q=Okafor"))
    assert 'class="held-film" src="data:image/png;base64,' in detail  # the film itself, to see what is being filed
    assert "OKAFOR, Ada" in detail and trail(AuditEvent.Action.DICOM_UNMATCHED_VIEWED)[-1].details["patients"] == [str(patient.pk)]

    refused = client.post(f"/unmatched-dicom/{instance.pk}/file/", {"patient": patient.pk})
    assert refused.status_code == 400
    assert "The DICOM header names someone else: its patient ID is “MRN-4040” but the record number is MRN-0001" in text(refused)
    assert '<details class="identity-confirm" open>' in text(refused)  # unfolded, as on the upload page
    assert f'value="{patient.pk}" required checked' in text(refused)  # the patient chosen stays chosen
    confirmed_without_reason = client.post(f"/unmatched-dicom/{instance.pk}/file/", {"patient": patient.pk, "confirm_identity_mismatch": "on", "identity_mismatch_reason": " "})
    assert confirmed_without_reason.status_code == 400 and "Write the reason for filing it under this patient anyway." in text(confirmed_without_reason)
    assert not Scan.objects.exists() and ReceivedInstance.objects.get().outcome == "unmatched"

    with django_capture_on_commit_callbacks() as callbacks:
        filed = client.post(f"/unmatched-dicom/{instance.pk}/file/", {"patient": patient.pk, "confirm_identity_mismatch": "on",
                                                                     "identity_mismatch_reason": "Registered under her old number at the clinic"})
    assert filed.status_code == 302 and filed.url == "/unmatched-dicom/"
    scan = Scan.objects.get()
    instance.refresh_from_db()
    assert (instance.outcome, instance.scan, instance.resolved_by, instance.stored_name) == ("filed", scan, clinician, "")
    assert instance.resolution_reason == "Registered under her old number at the clinic" and instance.resolved_at
    # Through the upload's intake: queued for analysis, the header's study kept, the confirmation on the scan.
    assert (scan.patient, scan.status, scan.uploaded_by, scan.header_patient_id, scan.study_instance_uid) == (patient, "queued", clinician, "MRN-4040", instance.study_instance_uid)
    assert scan.identity_mismatch_reason == "Registered under her old number at the clinic" and callbacks
    uploaded, filed_row = trail(AuditEvent.Action.SCAN_UPLOADED)[-1], trail(AuditEvent.Action.DICOM_FILED)[-1]
    assert uploaded.scan == filed_row.scan == scan and filed_row.actor == clinician
    assert filed_row.details["ae_title"] == "ORTHANC" and filed_row.details["identity_mismatch_reason"] == "Registered under her old number at the clinic"
    assert "MRN-4040" not in text(client.get("/unmatched-dicom/"))


def test_an_instance_whose_header_agrees_with_the_chosen_patient_is_filed_without_a_reason(held, clinician, patient):
    patient.date_of_birth = date(1981, 1, 1)
    patient.save()
    instance = held(patient_id="MRN-0001", name="OKAFOR^Ada", birth_date="19800101")
    assert instance.reason.startswith("The DICOM header names someone else: its birth date is 1 Jan 1980")
    patient.date_of_birth = date(1980, 1, 1)  # the record's birth date was wrong, and has been corrected since
    patient.save()
    assert signed_in(clinician).post(f"/unmatched-dicom/{instance.pk}/file/", {"patient": patient.pk}).status_code == 302
    assert Scan.objects.get().identity_mismatch == ""


def test_registering_a_new_patient_from_the_header(held, clinician, site_a):
    instance = held()
    client = signed_in(clinician)
    form = text(client.get(f"/unmatched-dicom/{instance.pk}/"))
    assert 'value="MRN-4040"' in form and 'value="Mbeki"' in form and 'value="Thabo"' in form and 'value="1970-03-12"' in form
    details = {"medical_record_number": "MRN-4040", "family_name": "Mbeki", "given_name": "Thabo", "date_of_birth": "1970-03-12", "sex": "M"}
    assert client.post(f"/unmatched-dicom/{instance.pk}/register/", details).status_code == 302
    registered = Patient.objects.get(medical_record_number="MRN-4040")
    assert (registered.site, registered.created_by, registered.sex) == (site_a, clinician, "M")
    scan = Scan.objects.get()
    assert scan.patient == registered and scan.identity_mismatch == ""
    assert trail(AuditEvent.Action.PATIENT_CREATED)[-1].patient == registered and trail(AuditEvent.Action.DICOM_FILED)[-1].scan == scan


def test_a_record_number_already_used_is_a_sentence_and_nothing_is_registered(held, clinician, patient):
    instance = held()
    details = {"medical_record_number": "mrn-0001", "family_name": "Mbeki", "given_name": "Thabo", "sex": "M"}
    page = signed_in(clinician).post(f"/unmatched-dicom/{instance.pk}/register/", details)
    assert page.status_code == 400 and "A patient with medical record number mrn-0001 is already registered at St Elsewhere." in text(page)
    assert Patient.objects.count() == 1 and not Scan.objects.exists() and ReceivedInstance.objects.get().outcome == "unmatched"


def test_filing_twice_makes_one_scan_and_the_second_is_told_who_filed_it(held, clinician, administrator, site_a):
    instance = held()
    details = {"medical_record_number": "MRN-4040", "family_name": "Mbeki", "given_name": "Thabo", "sex": "M"}
    assert signed_in(clinician).post(f"/unmatched-dicom/{instance.pk}/register/", details).status_code == 302
    registered = Patient.objects.get(medical_record_number="MRN-4040")
    for second in (signed_in(clinician).post(f"/unmatched-dicom/{instance.pk}/register/", details),
                   signed_in(administrator).post(f"/unmatched-dicom/{instance.pk}/file/", {"patient": registered.pk}),
                   signed_in(administrator).post(f"/unmatched-dicom/{instance.pk}/dismiss/", {"reason": "test film"})):
        assert second.status_code == 409
        assert f"This image was already filed under {registered} by dr_a at" in text(second)
    assert Scan.objects.count() == 1 and Patient.objects.filter(medical_record_number="MRN-4040").count() == 1


def test_dismissing_needs_a_reason_deletes_the_file_and_keeps_who_and_why(held, clinician, django_capture_on_commit_callbacks):
    instance = held()
    client = signed_in(clinician)
    refused = client.post(f"/unmatched-dicom/{instance.pk}/dismiss/", {"reason": ""})
    assert refused.status_code == 400 and "Write why this image is dismissed" in text(refused)
    kept = stored_files()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/unmatched-dicom/{instance.pk}/dismiss/", {"reason": "A phantom from the physicists' QA"}).status_code == 302
    instance.refresh_from_db()
    assert (instance.outcome, instance.resolution_reason, instance.resolved_by, instance.stored_name) == ("dismissed", "A phantom from the physicists' QA", clinician, "")
    assert len(kept) - len(stored_files()) == 1 and not Scan.objects.exists()
    assert trail(AuditEvent.Action.DICOM_DISMISSED)[-1].details["reason"] == "A phantom from the physicists' QA"
    # A resend of it is acknowledged and not held again.
    data = radiograph(patient_id="MRN-4040", sop_uid=instance.sop_instance_uid)
    assert receiving.receive(instance.node, data) == receiving.SUCCESS and ReceivedInstance.objects.get().outcome == "dismissed"


def test_bad_input_gets_a_sentence_never_a_500(held, clinician, other_site_clinician, patient, site_b):
    instance = held()
    client = signed_in(clinician)
    assert client.get("/unmatched-dicom/999999/").status_code == 404
    assert client.post("/unmatched-dicom/999999/file/", {"patient": patient.pk}).status_code == 404
    for bad, sentence in (({}, "Choose the patient to file the image to."),
                          ({"patient": "not-a-uuid"}, "Choose the patient to file the image to."),
                          ({"patient": "00000000-0000-0000-0000-000000000000"}, "That patient is not one of this site's patients you can see; nothing was filed.")):
        page = client.post(f"/unmatched-dicom/{instance.pk}/file/", bad)
        assert page.status_code == 400 and sentence in text(page)
    # A patient of another site: not offered, and refused when posted.
    elsewhere = Patient.objects.create(site=site_b, medical_record_number="MRN-4040", family_name="Mbeki", given_name="Thabo")
    page = signed_in(other_site_clinician).post(f"/unmatched-dicom/{instance.pk}/file/", {"patient": elsewhere.pk})
    assert page.status_code == 404
    page = client.post(f"/unmatched-dicom/{instance.pk}/file/", {"patient": elsewhere.pk})
    assert page.status_code == 400 and "nothing was filed" in text(page)
    assert client.post(f"/unmatched-dicom/{instance.pk}/register/", {"family_name": "Mbeki"}).status_code == 400
    assert not Scan.objects.exists() and ReceivedInstance.objects.get().outcome == "unmatched"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_clinician_files_an_unmatched_image_from_the_top_bar_in_a_browser(live_server, held, clinician, monkeypatch):
    from diagnosis import scan_intake
    from tests.diagnosis.test_browser import expect, log_in, screenshot

    from .browser import chromium_page

    # The filed scan stays queued: no worker runs here, and none of another test should take it.
    monkeypatch.setattr(scan_intake.lifecycle, "enqueue_on_commit", lambda *jobs: None)
    held()
    with chromium_page() as page:
        log_in(page, live_server.url, clinician.username)
        expect(page.get_by_role("status").filter(has_text="waiting to be filed")).to_be_visible()
        screenshot(page, "worklist-unmatched-notice")
        page.get_by_role("link", name="Unmatched DICOM").click()
        expect(page.get_by_role("cell", name="No patient with record number MRN-4040 at St Elsewhere.")).to_be_visible()
        screenshot(page, "unmatched-dicom-list")
        page.get_by_role("link", name="File the image received").click()
        expect(page.get_by_label("Family name")).to_have_value("Mbeki")
        expect(page.get_by_label("Date of birth")).to_have_value("1970-03-12")
        page.get_by_label("Sex").select_option(label="Male")
        screenshot(page, "unmatched-dicom-detail")
        page.get_by_role("button", name="Register, file and analyse").click()
        expect(page.get_by_role("status").first).to_contain_text("was filed under MBEKI, Thabo")
        expect(page.get_by_text("No image is waiting to be filed.")).to_be_visible()
    assert Scan.objects.get().patient.medical_record_number == "MRN-4040"


def test_the_sweep_of_unnamed_files_keeps_a_held_instance_s_file(held):
    from datetime import timedelta

    from diagnosis import stored_files

    instance = held()
    assert instance.stored_name not in stored_files.sweep_unreferenced(grace=timedelta(0))
    assert receiving.storage.read(instance.stored_name)


@pytest.mark.django_db(transaction=True)
def test_two_people_filing_at_the_same_moment_make_one_scan(held, clinician, administrator, patient, monkeypatch):
    import threading

    from django.db import connection

    from diagnosis import scan_intake

    monkeypatch.setattr(scan_intake.lifecycle, "enqueue_on_commit", lambda *jobs: None)  # no worker here; nothing for another test's
    instance = held()
    form = {"patient": patient.pk, "confirm_identity_mismatch": "on", "identity_mismatch_reason": "Old clinic number"}
    clients, answers, start = [signed_in(clinician), signed_in(administrator)], [], threading.Barrier(2)

    def file(client):
        start.wait()
        try:
            answers.append(client.post(f"/unmatched-dicom/{instance.pk}/file/", form))
        finally:
            connection.close()

    threads = [threading.Thread(target=file, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [302, 409]
    assert f"This image was already filed under {patient} by" in text(next(answer for answer in answers if answer.status_code == 409))
    assert Scan.objects.count() == 1 and len(trail(AuditEvent.Action.DICOM_FILED)) == 1
