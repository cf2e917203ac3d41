from django.apps import AppConfig


class RacelabConfig(AppConfig):
    name = "racelab"
    verbose_name = "Race lab"

    def ready(self) -> None:
        from racelab.racewindow.barrier import check_settings

        # A server refused race mode (DEBUG off) must not start at all, rather than fail at its
        # first request.
        check_settings()
