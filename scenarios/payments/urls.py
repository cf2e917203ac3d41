from django.urls import path

from scenarios.payments.views import PayView

urlpatterns = [
    path("pay/", PayView.as_view(), name="pay-invoice"),
]
