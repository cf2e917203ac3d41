from django.urls import path

from scenarios.signups.views import RegisterView

urlpatterns = [
    path("register/", RegisterView.as_view(), name="register-signup"),
]
