from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views import View
from django.views.generic import ListView

from accounts.audit import headline_rows
from labreport.selectors import runs_visible_to, timed_requests
from labreport.timeline import layout_timeline, windows
from labreport.timeline_svg import render_svg

# Bars per timeline on the page: a longer run is shown a window at a time, with links to the rest.
MAX_BARS_PER_WINDOW = 400
WHOLE_RUN = "all"


class RunListView(LoginRequiredMixin, ListView):
    """The runs the user may see, newest first."""

    template_name = "labreport/run_list.html"
    context_object_name = "runs"
    paginate_by = 50

    def get_queryset(self):
        return runs_visible_to(user=self.request.user)


class RunDetailView(LoginRequiredMixin, View):
    """One run: the audit when it ended, its timeline (a window of it for a long run), its requests."""

    def get(self, request, pk: int):
        run = runs_visible_to(user=request.user).filter(pk=pk).first()
        if run is None:
            raise Http404("No such run among yours.")
        requests = timed_requests(run=run)
        whole = layout_timeline(requests=requests)
        spans = windows(layout=whole, max_bars=MAX_BARS_PER_WINDOW) if requests else []
        chosen = request.GET.get("window", WHOLE_RUN if len(spans) <= 1 else "1")
        if chosen == WHOLE_RUN:
            layout, current = whole, None
        else:
            current = _window_number(chosen, count=len(spans))
            if current is None:
                return HttpResponseBadRequest(
                    f"window must be '{WHOLE_RUN}' or a number from 1 to {len(spans)}.\n",
                    content_type="text/plain",
                )
            layout = layout_timeline(requests=requests, window=spans[current - 1])
        audit = run.audit
        context = {
            "run": run,
            "headline": headline_rows(audit),
            "anomalies": [_anomaly_row(anomaly) for anomaly in audit["anomalies"]],
            "verdict": audit["verdict"],
            "timeline": mark_safe(render_svg(layout)),  # render_svg escapes everything it draws
            "totals": whole.totals,
            "bars": [_bar_row(bar) for bar in layout.bars],
            "windows": [(number, span) for number, span in enumerate(spans, start=1)]
            if len(spans) > 1
            else [],
            "current_window": current,
            "whole_run": chosen == WHOLE_RUN,
            "ledger_kept": _ledger_kept(run, requests),
        }
        return render(request, "labreport/run_detail.html", context)


def _ledger_kept(run, requests) -> bool:
    """Whether the run's ledger rows are still there for the admin to show (a reset deletes them)."""
    written = next((request.ledger_id for request in requests if request.ledger_id is not None), None)
    return written is not None and run.account.transactions.filter(pk=written).exists()


def _window_number(text: str, *, count: int) -> int | None:
    # ASCII digits only: isdigit() passes a superscript (²) that int() refuses.
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= count:
        return None
    return int(text)


def _ledger_link(ledger_id: int) -> tuple[int, str]:
    return ledger_id, reverse("admin:accounts_transaction_change", args=[ledger_id])


def _anomaly_row(anomaly: dict) -> dict:
    def example(found: dict | None) -> dict | None:
        if not found:
            return None
        ids = found.get("ledger_ids") or ([found["ledger_id"]] if "ledger_id" in found else [])
        text = ", ".join(
            f"{key}={value}" for key, value in found.items() if key not in ("ledger_ids", "ledger_id")
        )
        return {"text": text, "ledger": [_ledger_link(ledger_id) for ledger_id in ids]}

    return {
        "kind": anomaly["kind"],
        "count": anomaly["count"],
        "explanation": anomaly["explanation"],
        "first": example(anomaly["first"]),
        "worst": example(anomaly["worst"]),
    }


def _bar_row(bar) -> dict:
    return {
        "bar": bar,
        "ledger": _ledger_link(bar.ledger_id) if bar.ledger_id is not None else None,
    }
