from django.urls import path

from scenarios.capacity.views import JoinView

urlpatterns = [
    path("join/", JoinView.as_view(), name="join-activity"),
]
