from django.urls import path

from accounts.views import WithdrawView

urlpatterns = [
    path("withdraw/", WithdrawView.as_view(), name="withdraw"),
]
