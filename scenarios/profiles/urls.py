from django.urls import path

from scenarios.profiles.views import EditProfileView

urlpatterns = [
    path("edit/", EditProfileView.as_view(), name="edit-profile"),
]
