from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("auth/login/", auth_views.LoginView.as_view(), name="login"),
    path("auth/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("lab/", include("labreport.urls")),
    path("scenarios/voucher/", include("scenarios.vouchers.urls")),
    path("scenarios/capacity/", include("scenarios.capacity.urls")),
    path("scenarios/get_or_create/", include("scenarios.get_or_create.urls")),
    path("scenarios/signup/", include("scenarios.signups.urls")),
    path("scenarios/payment/", include("scenarios.payments.urls")),
    path("scenarios/profile/", include("scenarios.profiles.urls")),
    path("scenarios/transfer/", include("scenarios.transfers.urls")),
]
