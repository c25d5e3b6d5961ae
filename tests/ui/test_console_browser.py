"""The console in real headless Chromium against the real stack: policy worker, API with the simulated kitchen,
and `hearth console`, all separate processes on loopback.

One operator journey (login, live video, start a task, subtask, coaching, e-stop, episode review with scrubbing
and relabeling) plus the role and error cases. Screenshots go to docs/screenshots (referenced by the README) and
to the test artifacts folder.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.support import PYTHON, free_port, spawn, wait_until
from tests.ui.stack import ROBOT_ID, running_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

TASK = "put the can in the sink"
COACHING = "pick up the can"
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # a per-deployment coaching time limit, so the console shows its countdown (long: it must not run out here)
    with running_stack(tmp_path_factory.mktemp("console-stack"), orchestrator={"coach_hold_s": 900}) as running:
        yield running


@pytest.fixture
def page(browser, request, artifacts_dir):
    from tests.ui.conftest import VIEWPORT

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:  # what the browser showed when it failed
        with contextlib.suppress(Exception):
            page.screenshot(path=str(artifacts_dir / f"FAILED-{request.node.name}.png"), full_page=True, timeout=20_000)
    context.close()


def login(page, url: str, token: str) -> None:
    page.goto(url, timeout=UI_TIMEOUT_MS)
    page.get_by_label("API token", exact=True).and_(page.locator("input")).fill(token)
    page.get_by_role("button", name="Log in").click()


def component_frame(page, marker: str):
    """The Streamlit component iframe whose page defines `window.<marker>` (the live view or the player)."""

    def find():
        for frame in page.frames:
            try:
                if frame.evaluate(f"typeof window.{marker} !== 'undefined'"):
                    return frame
            except Exception:  # frames come and go while Streamlit reruns
                continue
        return None

    return wait_until(find, timeout=UI_TIMEOUT_MS / 1000, interval=0.25, what=f"component with window.{marker}")


def camera_src(frame, camera: str) -> str:
    return frame.evaluate(f"document.querySelector('.cam[data-camera=\"{camera}\"] img')?.src || ''")


def test_bad_token_is_refused_with_a_clear_message(stack, page, shoot):
    login(page, stack.console_url, "not-a-real-token")
    page.get_by_text("That token was not accepted").wait_for()
    assert page.get_by_role("button", name="E-STOP").count() == 0
    page.get_by_text(f"API {stack.api_url}: ok").wait_for()  # the login page shows the API it talks to
    shoot(page, "login")


def test_unreachable_api_is_reported_on_the_login_page(page, tmp_path):
    dead_api = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    args = [PYTHON, "-m", "agent.cli", "console", "--api-url", dead_api, "--host", "127.0.0.1", "--port", str(port)]
    with spawn(args, tmp_path / "console.log") as console:
        import httpx

        def healthy() -> bool:
            assert console.alive(), console.log_text()
            return httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status_code == 200

        wait_until(healthy, timeout=120, what="console healthy")
        page.goto(f"http://127.0.0.1:{port}")
        message = page.get_by_text("The hearth API is not reachable at").first
        message.wait_for()
        assert dead_api in page.inner_text("body")


def test_viewer_sees_the_robot_but_no_controls(stack, page):
    login(page, stack.console_url, stack.tokens["viewer"])
    page.get_by_text("role viewer").or_(page.get_by_text("viewer", exact=True)).first.wait_for()
    live = component_frame(page, "hearthLive")
    live.wait_for_function(
        "document.querySelectorAll('.cam img[src^=\"data:image/jpeg\"]').length >= 2", timeout=UI_TIMEOUT_MS
    )
    page.get_by_text("e-stop clear").wait_for()
    assert page.get_by_role("button", name="E-STOP").count() == 0
    ws_url = live.evaluate("CONFIG.wsUrl")  # opened with a single-use ticket: no bearer token in a URL
    assert "ticket=" in ws_url and "token=" not in ws_url and stack.tokens["viewer"] not in ws_url
    assert page.get_by_text("Start a task").count() == 0
    assert page.get_by_role("button", name="Send coaching").count() == 0


def test_automation_gets_task_controls_and_estop_but_no_live_view_or_episodes(stack, page):
    login(page, stack.console_url, stack.tokens["automation"])
    page.get_by_text("Start a task").wait_for()
    page.get_by_role("button", name="E-STOP").wait_for()
    page.get_by_text("may not watch the live stream").wait_for()
    assert page.get_by_role("link", name="Episodes").count() == 0
    assert page.get_by_role("button", name="Send coaching").count() == 0
    assert page.get_by_role("button", name="Reset e-stop").count() == 0


def _box(locator) -> dict:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not rendered"
    return box


def _inside(box: dict, viewport: dict) -> bool:
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"] + 0.5
        and box["y"] + box["height"] <= viewport["height"] + 0.5
    )


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_live_page_fits_a_laptop_screen(stack, browser, shoot):
    """Issue 17: at 1280x800 and 1440x900 the cameras, subtask, task state, e-stop and every task control are on
    screen together, using a control scrolls nothing away, and the e-stop banner covers neither the cameras nor
    the task box."""
    from tests.ui.conftest import LAPTOP_VIEWPORTS

    api = stack.client("operator")
    context = browser.new_context(viewport=LAPTOP_VIEWPORTS[0])
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    task_id = None
    try:
        login(page, stack.console_url, stack.tokens["operator"])
        live = component_frame(page, "hearthLive")
        live.wait_for_function(
            "document.querySelectorAll('.cam img[src^=\"data:image/jpeg\"]').length >= 2", timeout=UI_TIMEOUT_MS
        )
        assert page.get_by_label("Task", exact=True).get_attribute("placeholder") == f"e.g. {TASK}"
        assert page.get_by_label("Say", exact=True).get_attribute("placeholder") == "e.g. pick up the can"
        page.get_by_label("Task", exact=True).fill(TASK)
        page.get_by_role("button", name="Start task").click()
        page.get_by_text(f"Task running: {TASK}").wait_for()  # the toast says what the task is doing
        live.wait_for_function("document.getElementById('task-state').textContent === 'running'", timeout=UI_TIMEOUT_MS)
        live.wait_for_function("document.getElementById('subtask').textContent !== '–'", timeout=UI_TIMEOUT_MS)
        task_id = api.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["task_id"]
        page.get_by_role("button", name="Pause").and_(page.locator(":enabled")).wait_for()
        view = page.frame_locator("iframe").first
        watched = {
            "cameras": view.locator("#cams"),
            "subtask": view.locator("#subtask"),
            "task state": view.locator("#task-state"),
            "task box": view.locator("#task-box"),
            "e-stop": page.get_by_role("button", name="E-STOP"),
            "start": page.get_by_role("button", name="Start task"),
            "pause": page.get_by_role("button", name="Pause"),
            "resume": page.get_by_role("button", name="Resume"),
            "abort": page.get_by_role("button", name="Abort"),
            "coach": page.get_by_role("button", name="Send coaching"),
        }
        for viewport in LAPTOP_VIEWPORTS:
            page.set_viewport_size(viewport)
            page.wait_for_timeout(500)  # let Streamlit's columns re-flow
            boxes = {name: _box(locator) for name, locator in watched.items()}
            off_screen = {name: box for name, box in boxes.items() if not _inside(box, viewport)}
            assert not off_screen, f"at {viewport}: not on screen without scrolling: {off_screen}"
            size = f"{viewport['width']}x{viewport['height']}"
            shoot(page, f"live-{size}")

        # using a control scrolls nothing away; the pause reason shows in the live view and the panel
        page.get_by_role("button", name="Pause").click()
        live.wait_for_function(
            "document.getElementById('pause-reason').textContent.startsWith('Paused: ')", timeout=UI_TIMEOUT_MS
        )
        page.get_by_text("Paused: ").first.wait_for()
        for name in ("cameras", "task box", "resume"):
            assert _inside(_box(watched[name]), LAPTOP_VIEWPORTS[-1]), f"{name} scrolled away after Pause"

        page.get_by_role("button", name="E-STOP").click()
        live.wait_for_function("document.getElementById('banner').classList.contains('on')", timeout=UI_TIMEOUT_MS)
        for viewport in LAPTOP_VIEWPORTS:
            page.set_viewport_size(viewport)
            page.wait_for_timeout(500)
            banner = _box(view.locator("#banner"))
            assert _inside(banner, viewport)
            for name in ("cameras", "task box"):
                assert not _overlap(banner, _box(watched[name])), f"at {viewport}: the e-stop banner covers the {name}"
            shoot(page, f"estop-{viewport['width']}x{viewport['height']}")
        page.get_by_role("button", name="Reset e-stop").click()
        page.get_by_text("e-stop clear").wait_for()
    finally:
        if task_id is not None:
            api.post(f"/api/v1/tasks/{task_id}/abort")
        context.close()


def test_safety_events_are_counted_per_kind_with_real_events_first(stack, page):
    """Issue 17: 155 clamp/limit events in 72 s buried a real one; the live view counts per kind and window and
    puts the real ones (watchdog, e-stop, NaN) first, in red."""
    login(page, stack.console_url, stack.tokens["viewer"])
    live = component_frame(page, "hearthLive")
    live.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=UI_TIMEOUT_MS)
    rows = live.evaluate("""() => {
        const now = Date.now() / 1000;
        for (let i = 0; i < 120; i++)  // one every 0.4 s for the last 48 s: 25 of them in the last 10 s
            onEvent({kind: "safety", ts: now - 0.2 - i * 0.4, data: {kind: "limit_acceleration", message: "smoothed"}});
        onEvent({kind: "safety", ts: now - 100, data: {kind: "clamp_position", message: "clamped"}});
        onEvent({kind: "safety", ts: now - 1, data: {kind: "watchdog", message: "no command for 0.6 s"}});
        renderSafety(now);  // counted at one instant, read in the same turn of the page's event loop
        return [...document.querySelectorAll('#safety tr')].map(r =>
            [r.dataset.kind, r.className, [...r.cells].slice(1, 4).map(c => Number(c.textContent))]);
    }""")
    assert rows[0] == ["watchdog", "serious", [1, 1, 1]]
    assert ["limit_acceleration", "routine", [25, 120, 120]] in rows
    assert ["clamp_position", "routine", [0, 0, 1]] in rows
    assert len(rows) == 3  # one line per kind, not one per event
    live.wait_for_function(  # the real event is on the timeline too; the routine ones are not
        "[...document.querySelectorAll('#timeline li[data-kind=\"safety\"]')].map(li => li.textContent)"
        ".join('|').includes('watchdog') && !document.querySelector('#timeline').textContent.includes('limit_')",
        timeout=UI_TIMEOUT_MS,
    )


def test_operator_journey(stack, page, shoot, artifacts_dir):
    api = stack.client("operator")
    login(page, stack.console_url, stack.tokens["operator"])
    page.get_by_text("Start a task").wait_for()
    live = component_frame(page, "hearthLive")
    live.wait_for_function(
        "document.querySelectorAll('.cam img[src^=\"data:image/jpeg\"]').length >= 2", timeout=UI_TIMEOUT_MS
    )
    assert live.evaluate("document.getElementById('conn').textContent") == "live"
    assert page.get_by_text("Push to talk").count() == 0  # no local speech-to-text model configured
    shoot(page, "login-live-idle")

    # start a task from the form (free text)
    page.get_by_label("Task", exact=True).fill(TASK)
    page.get_by_role("button", name="Start task").click()
    live.wait_for_function("document.getElementById('task-state').textContent === 'running'", timeout=UI_TIMEOUT_MS)
    assert live.evaluate("document.getElementById('task-text').textContent") == TASK

    # the camera image changes while the robot moves
    head = page.frame_locator("iframe").first.locator('.cam[data-camera="head"] img')
    before_src, before_png = camera_src(live, "head"), head.screenshot()
    live.wait_for_function(
        "(prev) => { const i = document.querySelector('.cam[data-camera=\"head\"] img'); return i && i.src !== prev; }",
        arg=before_src,
        timeout=UI_TIMEOUT_MS,
    )
    frames_then = live.evaluate("window.hearthLive.frames.head")
    live.wait_for_function("(n) => window.hearthLive.frames.head >= n + 3", arg=frames_then, timeout=UI_TIMEOUT_MS)
    after_png = head.screenshot()
    assert camera_src(live, "head") != before_src
    assert after_png != before_png, "the head camera looked identical in two screenshots while the task ran"

    # a subtask appears (live view and the REST-backed timeline), with a chunk plotted and state shown
    live.wait_for_function("document.getElementById('subtask').textContent !== '–'", timeout=UI_TIMEOUT_MS)
    live.wait_for_function("window.hearthLive.chunk !== null", timeout=UI_TIMEOUT_MS)
    live.wait_for_function("document.querySelectorAll('#state div').length > 0", timeout=UI_TIMEOUT_MS)
    subtask = live.evaluate("document.getElementById('subtask').textContent")
    assert subtask.strip()
    page.get_by_text("Subtask timeline").wait_for()
    page.get_by_text("(policy)").first.wait_for()
    latency = live.evaluate("document.getElementById('latency').textContent")
    assert latency.endswith("ms")
    shoot(page, "live-running")
    plot = page.frame_locator("iframe").first.locator("#plot")  # below the fold: its own picture, for people to judge
    plot.scroll_into_view_if_needed()
    plot.screenshot(path=str(artifacts_dir / "chunk-plot.png"))

    # pause and resume from the active-task panel
    page.get_by_role("button", name="Pause").click()
    live.wait_for_function("document.getElementById('task-state').textContent === 'paused'", timeout=UI_TIMEOUT_MS)
    page.get_by_role("button", name="Resume").and_(page.locator(":enabled")).wait_for()
    page.get_by_role("button", name="Resume").click()
    live.wait_for_function("document.getElementById('task-state').textContent === 'running'", timeout=UI_TIMEOUT_MS)

    # coaching shows up in both timelines
    page.get_by_label("Say", exact=True).fill(COACHING)
    page.get_by_role("button", name="Send coaching").click()
    live.wait_for_function(
        "(text) => [...document.querySelectorAll('#timeline li[data-kind=\"coaching\"]')].some(li => li.textContent.includes(text))",
        arg=COACHING,
        timeout=UI_TIMEOUT_MS,
    )
    live.wait_for_function("document.getElementById('subtask-source').textContent === 'coach'", timeout=UI_TIMEOUT_MS)
    page.get_by_text("(coach)").first.wait_for()
    # the coaching state with its countdown (the deployment's limit), refreshed every second by the panel
    coached_line = page.locator("p").filter(has_text="Coached:").first
    coached_line.wait_for()
    assert COACHING in coached_line.inner_text()
    page.get_by_text("releases in").first.wait_for()
    task_id = api.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["task_id"]
    sources = [s["source"] for s in api.get(f"/api/v1/tasks/{task_id}").json()["subtasks"]]
    assert "coach" in sources
    shoot(page, "live-coaching")

    # a viewer joining mid-task sees the task, its state and the coached subtask at once (from the hello)
    viewer = page.context.new_page()
    login(viewer, stack.console_url, stack.tokens["viewer"])
    joined = component_frame(viewer, "hearthLive")
    joined.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=UI_TIMEOUT_MS)
    assert joined.evaluate("document.getElementById('task-text').textContent") == TASK
    assert joined.evaluate("document.getElementById('task-state').textContent") in ("running", "paused")
    assert joined.evaluate("document.getElementById('subtask-source').textContent") == "coach"
    viewer.close()

    # e-stop: latched in the sidebar and in the live view; the task pauses and says why
    page.get_by_role("button", name="E-STOP").click()
    page.get_by_text("E-STOP LATCHED", exact=True).wait_for()
    live.wait_for_function("document.getElementById('banner').classList.contains('on')", timeout=UI_TIMEOUT_MS)
    live.wait_for_function("document.getElementById('task-state').textContent === 'paused'", timeout=UI_TIMEOUT_MS)
    live.wait_for_function(
        "document.getElementById('pause-reason').textContent.startsWith('Paused: e-stop')", timeout=UI_TIMEOUT_MS
    )
    live.wait_for_function(  # the pause and its reason on the live timeline
        "[...document.querySelectorAll('#timeline li[data-kind=\"task_state\"] .reason')]"
        ".some(s => s.textContent.startsWith('e-stop: '))",
        timeout=UI_TIMEOUT_MS,
    )
    assert api.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["estopped"] is True
    assert api.get(f"/api/v1/tasks/{task_id}").json()["state"] == "paused"
    page.get_by_text("Paused: e-stop: ").first.wait_for()  # the REST panel shows the reason too
    shoot(page, "estop-latched")
    page.get_by_role("button", name="Reset e-stop").click()
    page.get_by_text("e-stop clear").wait_for()
    live.wait_for_function("!document.getElementById('banner').classList.contains('on')", timeout=UI_TIMEOUT_MS)
    assert api.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["estopped"] is False
    # released, but nothing moves by itself: the task waits for the operator, and the console says so
    page.get_by_text("Paused: e-stop released: waiting for an operator to resume").first.wait_for()
    assert api.get(f"/api/v1/tasks/{task_id}").json()["state"] == "paused"
    page.get_by_text("Pauses and resumes").wait_for()
    shoot(page, "estop-released-paused")
    page.get_by_role("button", name="Resume").and_(page.locator(":enabled")).wait_for()
    page.get_by_role("button", name="Resume").click()
    live.wait_for_function("document.getElementById('task-state').textContent === 'running'", timeout=UI_TIMEOUT_MS)
    page.get_by_text("resumed: resumed by operator").first.wait_for()
    assert api.post(f"/api/v1/tasks/{task_id}/abort").json()["state"] == "aborted"

    # the recorded episode: open it, scrub it, see the coaching on its timeline, relabel it
    episode = wait_until(
        lambda: next((e for e in api.get("/api/v1/episodes").json()["items"] if e["task_id"] == task_id), None),
        timeout=120,
        what="the episode to be indexed",
    )
    page.get_by_role("link", name="Episodes").click()
    page.get_by_text("Open episode").wait_for()
    player = component_frame(page, "hearthPlayer")
    player.wait_for_function("document.querySelectorAll('video').length === 2", timeout=UI_TIMEOUT_MS)
    assert player.evaluate("document.querySelectorAll('#lanes .seg').length") >= 1
    coach_marks = player.evaluate("[...document.querySelectorAll('#lanes .evt.interjection')].map(e => e.title)")
    assert any(COACHING in mark for mark in coach_marks), coach_marks
    cursor_before = player.evaluate("document.getElementById('actions').dataset.cursorX")
    player.evaluate(
        "() => { const s = document.getElementById('scrub'); s.value = '700'; s.dispatchEvent(new Event('input')); }"
    )
    frame_index = int(player.evaluate("document.getElementById('clock').dataset.frame"))
    length = episode["length"]
    assert abs(frame_index - round(0.7 * length)) <= 1, (frame_index, length)
    assert player.evaluate("document.getElementById('actions').dataset.cursorX") != cursor_before
    assert player.evaluate("document.getElementById('now-subtask').textContent") != "–"
    times = player.evaluate("window.hearthPlayer.videos.map(v => v.currentTime)")
    assert all(t > 0 for t in times), times
    shoot(page, "episode-review")

    page.get_by_label("Outcome", exact=True).last.click()
    page.get_by_role("option", name="failed", exact=True).click()
    page.get_by_role("button", name="Save label").click()
    page.get_by_text("Label saved: failed").or_(page.get_by_text("outcome: failed")).first.wait_for()
    relabeled = api.get(f"/api/v1/episodes/{ROBOT_ID}/{episode['episode_index']}").json()
    assert relabeled["outcome"] == "failed"

    page.get_by_role("button", name="Export to Rerun").click()
    page.get_by_role("button", name="Download .rrd").wait_for()


def test_api_going_away_is_reported_in_the_console(stack, page):
    """Stops the shared stack's API and starts it again, so the module's tests may run in any order."""
    login(page, stack.console_url, stack.tokens["operator"])
    live = component_frame(page, "hearthLive")
    live.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=UI_TIMEOUT_MS)
    stack.processes["api"].stop()
    try:
        live.wait_for_function(
            "document.getElementById('conn').textContent.includes('API not reachable')", timeout=UI_TIMEOUT_MS
        )
        page.get_by_text("API unreachable").first.wait_for()
        assert stack.api_url in live.evaluate("document.getElementById('conn').textContent")
    finally:
        stack.restart_api()
    assert stack.client().get("/api/v1/robots").status_code == 200
