from django.urls import path

from scenarios.vouchers.views import RedeemView

urlpatterns = [
    path("redeem/", RedeemView.as_view(), name="redeem-voucher"),
]
