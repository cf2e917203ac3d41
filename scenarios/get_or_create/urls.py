from django.urls import path

from scenarios.get_or_create.views import SyncView

urlpatterns = [
    path("sync/", SyncView.as_view(), name="sync-repository"),
]
