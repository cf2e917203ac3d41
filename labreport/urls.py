from django.urls import path

from labreport.views import RunDetailView, RunListView

app_name = "labreport"
urlpatterns = [
    path("", RunListView.as_view(), name="runs"),
    path("runs/<int:pk>/", RunDetailView.as_view(), name="run"),
]
