"""The clinician's day in a real browser: Debian's Chromium driven by Playwright against the live
server and a real Celery inference worker. Results arrive without a reload, only the card whose
scan changed is replaced, and a review being typed survives another card's update."""
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from diagnosis.models import Scan
from tests.conftest import CELERY, PROJECT_ROOT, start_celery_worker, stop_celery_worker, worker_environment
from tests.images import png_bytes
from tests.ml.engine.dicom_files import dicom_file

CHROMIUM = "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -r requirements.txt")
if not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium", allow_module_level=True)
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
RESULT_TIMEOUT_MS = 120_000
# Screenshots for a person to look at, only when asked for (they are not test evidence).
SCREENS = os.environ.get("PORTAL_SCREENSHOTS_DIR")


def start_worker(log_path, queue):
    # live_server overrides settings, which hides settings.SETTINGS_MODULE from worker_environment();
    # pytest-django exported the module to the environment, so the worker is told from there.
    return start_celery_worker(log_path, queues=queue, extra_env={"DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]})


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop running in this thread; the test's ORM reads and the
    # database teardown are still plain synchronous calls, which Django would otherwise refuse.
    with pytest.MonkeyPatch.context() as patch, sync_api.sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def inference_queue(monkeypatch):
    """Scans of this test go to a queue of their own (Scan.queue, which the job lifecycle sends to),
    so that only the worker this test starts and stops serves them (the suite's shared worker may
    be running too). The live server runs in this process, so it sends there too."""
    name = f"inference-browser-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(Scan, "queue", name)
    yield name
    environment = {**worker_environment(), "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
    subprocess.run([*CELERY, "purge", "-f", "-Q", name], env=environment, cwd=PROJECT_ROOT, capture_output=True, timeout=60)


def screenshot(page, name):
    for width in (1280, 768):
        page.set_viewport_size({"width": width, "height": 900})
        shoot(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})


def log_in(page, base_url, username):
    page.goto(f"{base_url}/")  # the worklist, which first asks who you are
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("not-used-in-tests-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()


def upload(page, *names):
    page.get_by_label("Chest X-ray images").set_input_files(
        [{"name": name, "mimeType": "image/png", "buffer": png_bytes(seed=index + 31)} for index, name in enumerate(names)]
    )
    page.get_by_role("button", name="Upload and analyse").click()
    # static/upload.js sends the files without leaving the page and gives each file a status line.
    expect(page.locator(".upload-files > li")).to_have_count(len(names))
    expect(page.locator(".upload-file.state-waiting, .upload-file.state-done").filter(has_not_text="Sending")).to_have_count(len(names))
    # Set after the page loaded; a reload would lose it, so it proves the results came without one.
    page.evaluate("window.stillTheSamePage = true")


def card(page, scan):
    return page.locator(f"#scan-{scan.pk}")


def test_results_arrive_live_and_a_review_being_typed_survives(page, live_server, clinician, patient, active_model_version, inference_queue, private_storage):
    log_in(page, live_server.url, clinician.username)
    expect(page.get_by_text("No scans yet")).to_be_visible()
    patient_page = f"{live_server.url}/patients/{patient.pk}/"

    worker = start_worker(private_storage / f"{inference_queue}-1.log", inference_queue)
    try:
        page.goto(patient_page)
        upload(page, "first.png", "second.png")
        first, second = Scan.objects.order_by("uploaded_at", "pk")
        for scan in (first, second):
            expect(card(page, scan)).to_have_class(re.compile("status-done"), timeout=RESULT_TIMEOUT_MS)
            expect(card(page, scan).get_by_text("Model v")).to_be_visible()
        assert page.evaluate("window.stillTheSamePage") is True
    finally:
        stop_celery_worker(worker)

    # With no worker running, a third scan stays pending while the reader types a review.
    upload(page, "third.png")
    third = Scan.objects.exclude(pk__in=[first.pk, second.pk]).get()
    expect(card(page, third)).to_contain_text("Waiting for analysis")
    worklist = page.context.new_page()
    worklist.goto(f"{live_server.url}/")
    expect(worklist.locator(f"#row-{third.pk}")).to_contain_text("Waiting")
    worklist.evaluate("window.stillTheSamePage = true")

    note = card(page, first).get_by_placeholder("Note (optional)")
    card(page, first).get_by_label("I disagree").check()
    note.click()
    note.press_sequentially("Left lower zone looks clear to me")
    # The reader scrolls on (at once: a wheel scrolls smoothly, late and for an unknown time).
    page.evaluate("window.scrollBy(0, 200)")
    where_the_note_was = note.bounding_box()["y"]

    worker = start_worker(private_storage / f"{inference_queue}-2.log", inference_queue)
    try:
        expect(card(page, third)).to_have_class(re.compile("status-done"), timeout=RESULT_TIMEOUT_MS)
        expect(worklist.locator(f"#row-{third.pk}")).to_contain_text("Done", timeout=RESULT_TIMEOUT_MS)
    finally:
        stop_celery_worker(worker)
    assert note.input_value() == "Left lower zone looks clear to me"
    assert card(page, first).get_by_label("I disagree").is_checked()
    assert page.evaluate("document.activeElement.name") == "note", "the focus stays in the note being typed"
    # The third card above grew; the browser keeps what is being read where it was on the screen.
    assert note.bounding_box()["y"] == pytest.approx(where_the_note_was, abs=2)
    assert page.evaluate("window.stillTheSamePage") is True and worklist.evaluate("window.stillTheSamePage") is True
    screenshot(worklist, "worklist")
    screenshot(page, "patient-page")

    viewer = card(page, first).locator(".viewer")
    viewer.locator("summary").click()
    # The stored grey map is coloured in the browser: its lowest values become jet's dark blue, not grey.
    source = viewer.locator("canvas.overlay[data-heatmap]")
    page.wait_for_function("canvas => canvas.dataset.coloured === '1'", arg=source.element_handle())
    colours = source.evaluate("canvas => Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)")
    assert any(red != blue for red, blue in zip(colours[0::4], colours[2::4])), "the map must be drawn in colour"
    # The film opens in the DICOM viewer (tests/diagnosis/test_viewer_browser.py drives its tools) with the map as a layer over it.
    page.wait_for_function("viewer => viewer.dataset.mounted === 'ready'", arg=viewer.locator("[data-viewer]").element_handle(), timeout=30_000)
    layer = viewer.locator("canvas[data-heatmap-layer]")
    page.wait_for_function("layer => layer.dataset.drawn === '1'", arg=layer.element_handle())
    viewer.get_by_label("Heatmap opacity").fill("30")
    assert layer.evaluate("canvas => getComputedStyle(canvas).opacity") == "0.3"
    expect(viewer.locator("output[for^=opacity]")).to_have_text("30%")
    viewer.scroll_into_view_if_needed()
    screenshot(page, "viewer")


def shoot(page, name):  # what the page shows now, for a person to look at (PORTAL_SCREENSHOTS_DIR); not evidence
    if SCREENS:
        Path(SCREENS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENS) / f"{name}.png"), full_page=True)


def pdf_page_count(data):
    return len(re.findall(rb"/Type\s*/Page[^s]", data))


def test_several_files_each_get_a_status_and_a_result_prints_on_one_page(page, live_server, clinician, patient, active_model_version, inference_queue, private_storage):
    log_in(page, live_server.url, clinician.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    page.evaluate("window.stillTheSamePage = true")
    worker = start_worker(private_storage / f"{inference_queue}-several.log", inference_queue)
    try:
        page.get_by_label("Chest X-ray images").set_input_files([
            {"name": "left.png", "mimeType": "image/png", "buffer": png_bytes(seed=41)},
            {"name": "referral-letter.png", "mimeType": "image/png", "buffer": b"Please review this patient.\n" * 40},
            {"name": "right.png", "mimeType": "image/png", "buffer": png_bytes(seed=42)},
            {"name": "thumbnail.png", "mimeType": "image/png", "buffer": png_bytes(size=16)},
            {"name": "someone-else.dcm", "mimeType": "application/dicom", "buffer": dicom_file(128, 0, PatientID="Covid0000")},
        ])
        page.get_by_role("button", name="Upload and analyse").click()
        files = page.locator(".upload-files > li")
        expect(files).to_have_count(5)
        expect(files.nth(1)).to_contain_text("Not uploaded: File 2 (referral-letter.png)")
        expect(files.nth(1).locator(".name")).to_have_text("")  # the refusal names the file: not twice
        expect(page.locator("details.identity-confirm")).to_have_attribute("open", "")  # unfolded for the header naming someone else
        expect(files.nth(3)).to_contain_text("at least 64 pixels")
        assert page.locator("progress.upload-progress").evaluate("bar => bar.value") == 100
        shoot(page, "upload-statuses-pending")
        for good in (0, 2):
            expect(files.nth(good)).to_contain_text("Done:", timeout=RESULT_TIMEOUT_MS)
            expect(files.nth(good)).to_contain_text("%")
    finally:
        stop_celery_worker(worker)
    assert Scan.objects.count() == 2 and page.evaluate("window.stillTheSamePage") is True
    page.locator(".upload-status").scroll_into_view_if_needed()
    shoot(page, "upload-statuses-done")

    scan = Scan.objects.order_by("uploaded_at", "pk").first()
    with page.context.expect_page() as opened:
        card(page, scan).get_by_role("link", name="Print report").click()
    report = opened.value
    expect(report.get_by_role("heading", name="Chest X-ray AI report")).to_be_visible()
    overlay = report.locator("canvas.overlay")
    report.wait_for_function("canvas => canvas.dataset.coloured === '1'", arg=overlay.element_handle())
    report.emulate_media(media="print")
    for not_on_paper in (report.locator(".topbar"), report.get_by_role("button", name="Print report"), report.locator(".report a").first):
        expect(not_on_paper).to_be_hidden()  # nor any link: it means nothing on paper
    for shown in ("OKAFOR, Ada", "MRN-0001", "St Elsewhere", "Model v", "Decision support, not a diagnosis", "Not yet reviewed"):
        expect(report.locator(".report")).to_contain_text(shown)
    assert overlay.is_visible() and overlay.evaluate("canvas => canvas.width") > 0
    # The smaller page box of A4 (186 mm wide) and Letter (255 mm high) inside 12 mm margins, at 96 px per inch.
    report.set_viewport_size({"width": 703, "height": 964})
    assert report.evaluate("document.scrollingElement.scrollHeight") <= 964
    shoot(report, "report-print-media")
    for paper in ("A4", "Letter"):
        pdf = report.pdf(format=paper, print_background=True)
        assert pdf_page_count(pdf) == 1, f"the report fits one {paper} page"
        if SCREENS:
            (Path(SCREENS) / f"report-{paper}.pdf").write_bytes(pdf)


def no_horizontal_overflow(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def unlabelled_fields(page):
    return page.evaluate("""Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
        .filter(field => field.labels.length === 0 && !field.getAttribute('aria-label')).map(field => field.name || field.id)""")


def one_line_rows(page):
    """Whether every worklist row is one line of text: no cell taller than one line and its padding."""
    return page.evaluate("""Array.from(document.querySelectorAll('table.worklist tbody td')).every(cell => { const style = getComputedStyle(cell);
        return cell.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom) < 1.6 * parseFloat(style.lineHeight); })""")


LONG_FILE_NAMES = [f"{ward}_{'chest_PA_erect_portable_1.2.840.113619.2.55.3.604688119.969.1268071029.320'}"[:76] + ".png" for ward in ("ward3", "icu12")]
LONG_ID = "1.2.840.113619.2.55.3.604688119.969.1268071029.320.1.2.840.1136191"  # with 80-character file names: as long as real ones get


def test_the_pages_fit_1280_and_768_px_with_long_names_and_work_from_the_keyboard(page, live_server, administrator, patient, make_version, add_result,
                                                                                   inference_queue, private_storage, settings, tmp_path):
    from ml import datasets
    from ml.models import TrainingJob
    from tests.ml.conftest import make_dataset
    from tests.ml.test_comparison import engine_metrics, measure

    folder = make_dataset(f"tablet-{tmp_path.name}", {"covid": 2, "normal": 2})
    settings.ML_EVALUATION_SET = folder.name
    versions = [make_version(synthetic=True), make_version()]
    for version, auc in zip(versions, (0.81, 0.93)):
        measure(version, folder.name, datasets.dataset_fingerprint(folder), engine_metrics(auc, 0.8, 0.7))
    type(patient).objects.filter(pk=patient.pk).update(medical_record_number=LONG_ID[:64])
    result = add_result(patient, versions[0], "covid", 0.91)
    Scan.objects.filter(pk=result.pk).update(original_filename=LONG_FILE_NAMES[0], accession_number=LONG_ID[:64], header_patient_id=LONG_ID[:64],
                                               study_instance_uid=LONG_ID[:64])
    job = TrainingJob.objects.create(
        dataset_path="/very/long/path/to/a/dataset/folder/with/many/levels/covid-chestxray-dataset-2020-final-v3",
        parameters={"backbone": "inceptionv3", "image_size": 299, "epochs": 25}, total_epochs=25, epoch=3,
        history=[{"epoch": epoch, "loss": 0.61, "accuracy": 0.7, "val_loss": 0.65, "val_accuracy": 0.68, "val_auc": 0.71, "learning_rate": 0.0001} for epoch in range(1, 4)],
    )
    log_in(page, live_server.url, administrator.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    upload(page, *LONG_FILE_NAMES)  # no worker: they stay waiting, with their long names on the page
    screens = {
        "worklist": "/", "patients": "/patients/", "patient": f"/patients/{patient.pk}/", "report": f"/scans/{result.pk}/report/",
        "comparison": "/models/", "jobs": "/models/jobs/", "job": f"/models/jobs/{job.pk}/", "users": "/users/",
        "new-user": "/users/new/", "tokens": "/accounts/tokens/", "audit": "/audit/", "sites": "/sites/", "version": f"/models/versions/{versions[0].pk}/",
        "scan-viewer": f"/scans/{result.pk}/viewer/",
    }
    for width in (1280, 768):
        page.set_viewport_size({"width": width, "height": 1024})
        for name, path in screens.items():
            page.goto(f"{live_server.url}{path}")
            shoot(page, f"{name}-{width}")
            assert no_horizontal_overflow(page), f"{path} is wider than a {width} px window"
            assert unlabelled_fields(page) == [], f"{path} has fields without a label"
            if name == "worklist" and width == 1280:
                assert page.locator("table.worklist tbody tr").count() == 3
                assert one_line_rows(page), "each scan keeps to one line of the worklist at 1280 px"
                assert page.locator(f"#row-{result.pk} [title*='{LONG_FILE_NAMES[0]}']").count() == 1, "a shortened name is whole on hover"
                assert page.locator(f"#row-{result.pk} [title*='study UID {LONG_ID[:64]}']").count() == 1, "a long study UID is whole on hover"
            if name == "patient":
                assert page.locator(f"#scan-{result.pk} .uid[title='Study Instance UID {LONG_ID[:64]}']").count() == 1

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    assert skip.evaluate("link => getComputedStyle(link).outlineStyle") != "none", "the focus is visible"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
