"""The lab report pages: who may see which run, and what a run's page shows."""

import re
import xml.etree.ElementTree as ElementTree

import pytest
from django.urls import reverse

from labreport import views

SVG = "{http://www.w3.org/2000/svg}"


def run_url(run, **query) -> str:
    url = reverse("labreport:run", args=[run.pk])
    return url + ("?" + "&".join(f"{key}={value}" for key, value in query.items()) if query else "")


def timeline(response) -> ElementTree.Element:
    (svg,) = re.findall(r"<svg.*</svg>", response.content.decode(), flags=re.S)
    return ElementTree.fromstring(svg)


def bars(response) -> list[ElementTree.Element]:
    return [rect for rect in timeline(response).iter(f"{SVG}rect") if "bar" in rect.get("class", "").split()]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["runs", "run"])
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, account, make_lab_run, name):
    run = make_lab_run(account, reads=[1000])
    url = reverse("labreport:runs") if name == "runs" else run_url(run)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.django_db
def test_the_list_shows_the_users_own_runs_with_their_figures(client, account, make_account, make_lab_run):
    mine = make_lab_run(account, reads=[1000, 1000, 999], refused=1)
    other = make_account(username="bob")
    theirs = make_lab_run(other, reads=[1000])
    client.force_login(account.user)

    page = client.get(reverse("labreport:runs")).content.decode()

    assert run_url(mine) in page and run_url(theirs) not in page
    assert "3 / 1 / 0" in page
    assert mine.verdict in page


@pytest.mark.django_db
def test_another_users_run_is_not_found(client, account, make_account, make_lab_run):
    theirs = make_lab_run(make_account(username="bob"), reads=[1000])
    client.force_login(account.user)

    assert client.get(run_url(theirs)).status_code == 404


@pytest.mark.django_db
def test_staff_see_every_run(client, account, make_lab_run, django_user_model):
    run = make_lab_run(account, reads=[1000])
    staff = django_user_model.objects.create_user(username="staff", is_staff=True)
    client.force_login(staff)

    assert client.get(run_url(run)).status_code == 200
    assert run_url(run) in client.get(reverse("labreport:runs")).content.decode()


@pytest.mark.django_db
def test_a_runs_page_shows_the_audit_and_one_bar_per_request(client, account, make_lab_run):
    run = make_lab_run(account, reads=[1000, 999, 999, 998, 998, 998], refused=2)
    client.force_login(account.user)

    response = client.get(run_url(run))

    assert response.status_code == 200
    page = response.content.decode()
    assert (
        re.search(r'id="lost-withdrawals">(\d+)<', page).group(1) == str(run.audit["lost_withdrawals"]) == "3"
    )
    drawn = bars(response)
    assert len(drawn) == 8
    assert sum("refused" in bar.get("class") for bar in drawn) == 2
    # The two lost-update groups (999 twice, 998 three times): five bars drawn as lost, joined.
    assert sum("lost" in bar.get("class").split() for bar in drawn) == 5
    links = [element for element in timeline(response).iter() if "lost-link" in element.get("class", "")]
    assert len(links) == 2
    # Each ledger row is linked in the admin while the ledger still holds it.
    for ledger_id in run.recorded_requests.exclude(ledger_id=None).values_list("ledger_id", flat=True):
        assert reverse("admin:accounts_transaction_change", args=[ledger_id]) in page


@pytest.mark.django_db
def test_a_long_run_is_shown_a_window_at_a_time(client, account, make_lab_run, monkeypatch):
    monkeypatch.setattr(views, "MAX_BARS_PER_WINDOW", 4)
    run = make_lab_run(account, reads=list(range(1000, 990, -1)))
    client.force_login(account.user)

    first = client.get(run_url(run))
    whole = client.get(run_url(run, window="all"))

    assert 1 <= len(bars(first)) <= 4
    assert len(bars(whole)) == 10
    assert 'href="?window=2"' in first.content.decode()
    shown = {
        bar.get("data-request-id")
        for number in (1, 2, 3)
        for bar in bars(client.get(run_url(run, window=number)))
    }
    assert len(shown) == 10


@pytest.mark.django_db
@pytest.mark.parametrize("window", ["0", "99", "-1", "x", ""])
def test_a_window_that_does_not_exist_is_refused_with_a_reason(
    client, account, make_lab_run, monkeypatch, window
):
    monkeypatch.setattr(views, "MAX_BARS_PER_WINDOW", 4)
    run = make_lab_run(account, reads=list(range(1000, 990, -1)))
    client.force_login(account.user)

    response = client.get(run_url(run, window=window))

    assert response.status_code == 400
    assert "window must be 'all' or a number from 1 to" in response.content.decode()
