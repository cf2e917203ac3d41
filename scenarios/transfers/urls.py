from django.urls import path

from scenarios.transfers.views import SendView

urlpatterns = [
    path("send/", SendView.as_view(), name="send-transfer"),
]
