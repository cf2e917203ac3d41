"""audit_transactions --timeline: the audited account's latest run drawn into an SVG or a PNG."""

import json
import xml.etree.ElementTree as ElementTree
from functools import partial
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labreport.selectors import timed_requests
from labreport.timeline import layout_timeline
from tests.json_schema import valid
from tests.pictures import plot_of, read_picture

SVG = "{http://www.w3.org/2000/svg}"


def audit(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("audit_transactions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_an_svg_has_one_bar_per_request_of_the_latest_run(account, make_lab_run, tmp_path):
    make_lab_run(account, reads=[1000], token="older-run-token")
    latest = make_lab_run(account, reads=[999, 999, 998], refused=1)
    path = tmp_path / "run.svg"

    out, _ = audit("--username", "alice", "--timeline", str(path))

    assert f"Timeline of run {latest.pk} (4 requests, 2 in lost-update groups) written to {path}." in out
    svg = ElementTree.parse(path).getroot()
    bars = [rect for rect in svg.iter(f"{SVG}rect") if "bar" in rect.get("class", "").split()]
    assert sorted(int(bar.get("data-request-id")) for bar in bars) == sorted(
        latest.recorded_requests.values_list("id", flat=True)
    )


@pytest.mark.django_db
def test_a_png_is_drawn_by_its_extension(account, make_lab_run, tmp_path):
    run = make_lab_run(account, reads=[1000, 1000])
    path = tmp_path / "run.PNG"

    audit("--username", "alice", "--timeline", str(path))

    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # Both requests read 1000: each drawn red in its worker's lane, and joined.
    layout = layout_timeline(requests=timed_requests(run=run))
    plot = plot_of(read_picture(path), span_ms=layout.span_ms, lanes=len(layout.lanes))
    near = partial(pytest.approx, abs=2 * plot.ms_per_pixel)
    assert plot.picture.size == (1320, 259)  # 2 lanes: (1.6 + 2 x 0.28) in x 120 dpi
    first, second = layout.bars
    assert [plot.bars(lane) for lane in (0, 1)] == [
        [("lost", near(bar.start_ms), near(bar.end_ms))] for bar in (first, second)
    ]
    # The link runs 2 ms across and one lane down: it crosses a row of pixels over several.
    (crossing,) = plot.link_crossings(0.5)
    assert crossing == pytest.approx((first.read_ms + second.read_ms) / 2, abs=10 * plot.ms_per_pixel)


@pytest.mark.django_db
def test_with_json_the_message_goes_to_stderr_and_stdout_stays_json(account, make_lab_run, tmp_path):
    make_lab_run(account, reads=[1000])

    out, err = audit("--format", "json", "--timeline", str(tmp_path / "run.svg"))

    assert valid(json.loads(out), kind="account-audits")[0]["account_id"] == account.pk
    assert "written to" in err


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("run.txt", "give a file ending in .svg or .png, not 'run.txt'"),
        ("missing/run.svg", "does not exist; create it first"),
    ],
)
def test_a_bad_file_name_is_refused_before_anything(
    account, make_lab_run, tmp_path, name, message, database_unchanged
):
    make_lab_run(account, reads=[1000])

    with database_unchanged(), pytest.raises(CommandError, match=message):
        audit("--timeline", str(tmp_path / name))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_an_account_without_a_run_says_how_to_get_one(account, tmp_path):
    with pytest.raises(CommandError, match="has no recorded run to draw: fire one with `manage.py splatter`"):
        audit("--timeline", str(tmp_path / "run.svg"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_several_accounts_need_a_username(account, make_account, make_lab_run, tmp_path):
    make_lab_run(account, reads=[1000])
    make_account(username="bob")

    with pytest.raises(CommandError, match="2 accounts are audited: pass --username"):
        audit("--timeline", str(tmp_path / "run.svg"))


@pytest.mark.django_db
def test_an_unwritable_file_is_a_command_error(account, make_lab_run, tmp_path):
    make_lab_run(account, reads=[1000])
    (tmp_path / "run.svg").mkdir()

    with pytest.raises(CommandError, match="Cannot write the timeline to"):
        audit("--timeline", str(tmp_path / "run.svg"))
